-- Variance reduction (CUPED) in experiments: the tests of mean metrics are adjusted for a
-- pre-treatment covariate of each request. Only `query_length` (the user's input, logged
-- before a variant changes anything) so far; NULL: no adjustment.
--
-- Experiments that exist keep NULL (their stored test states have no covariate moments
-- and would have to be rebuilt); new ones are adjusted unless created without it.
SET LOCAL ROLE mlops_owner;

ALTER TABLE mlops.experiments
    ADD COLUMN covariate text
        CONSTRAINT covariate_must_be_query_length_or_null CHECK (covariate = 'query_length');
ALTER TABLE mlops.experiments ALTER COLUMN covariate SET DEFAULT 'query_length';

GRANT INSERT (covariate) ON mlops.experiments TO mlops_writer;
