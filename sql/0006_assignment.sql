-- Deterministic variant assignment, the same as stream_mlops.assignment.assign():
--   SELECT mlops.assign_variant('<experiment uuid>', 'user-42');
SET LOCAL ROLE mlops_owner;

CREATE FUNCTION mlops.assign_variant_with(seed text, unit_id text, variants jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    WITH point AS (
        -- First 8 bytes of sha256('seed:unit') as an unsigned 64-bit number.
        SELECT ('x' || encode(substr(sha256(convert_to(seed || ':' || unit_id, 'UTF8')),
                                     1, 8), 'hex'))::bit(64)::bigint::numeric AS s
    ), p AS (
        SELECT CASE WHEN s < 0 THEN s + 18446744073709551616 ELSE s END AS u FROM point
    ), arms AS (
        SELECT v.ord, v.value->>'name' AS name, (v.value->>'weight')::numeric AS w
        FROM jsonb_array_elements(variants) WITH ORDINALITY AS v(value, ord)
    ), bounds AS (
        SELECT ord, name,
               floor(sum(w) OVER (ORDER BY ord) / sum(w) OVER () * 18446744073709551616)
                   AS upper_bound
        FROM arms
    )
    SELECT coalesce(
        (SELECT name FROM bounds, p WHERE p.u < bounds.upper_bound ORDER BY ord LIMIT 1),
        (SELECT name FROM bounds ORDER BY ord DESC LIMIT 1))
$$;

CREATE FUNCTION mlops.assign_variant(experiment uuid, unit_id text) RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT mlops.assign_variant_with(e.seed, unit_id, e.variants)
    FROM mlops.experiments e WHERE e.id = experiment
$$;

GRANT EXECUTE ON FUNCTION mlops.assign_variant_with(text, text, jsonb)
    TO mlops_writer, mlops_reader, mlops_processor;
GRANT EXECUTE ON FUNCTION mlops.assign_variant(uuid, text)
    TO mlops_writer, mlops_reader, mlops_processor;
