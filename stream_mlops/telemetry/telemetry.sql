-- The OpenTelemetry GenAI aggregates (telemetry.genai.GenAiMetrics).

-- Columns named like telemetry.genai.GenAiRow.
-- name: genai_totals
SELECT model, operation, provider, error_type, duration_count, duration_sum,
       duration_buckets, input_sum, input_buckets, output_sum, output_buckets
FROM mlops.genai_totals WHERE consumer = %(consumer)s;

-- Absolute values of the keys a batch touched, in the batch's transaction.
-- name: write_genai_totals
INSERT INTO mlops.genai_totals AS g (
    consumer, model, operation, provider, error_type, duration_count, duration_sum,
    duration_buckets, input_sum, input_buckets, output_sum, output_buckets)
SELECT %(consumer)s, r.model, r.operation, r.provider, r.error_type, r.duration_count,
       r.duration_sum, r.duration_buckets, r.input_sum, r.input_buckets, r.output_sum,
       r.output_buckets
FROM jsonb_to_recordset(%(totals)s::jsonb -> 'rows') AS r(
    model text, operation text, provider text, error_type text, duration_count bigint,
    duration_sum double precision, duration_buckets bigint[], input_sum bigint,
    input_buckets bigint[], output_sum bigint, output_buckets bigint[])
ON CONFLICT (consumer, model, operation, provider, error_type) DO UPDATE SET
    duration_count = EXCLUDED.duration_count, duration_sum = EXCLUDED.duration_sum,
    duration_buckets = EXCLUDED.duration_buckets, input_sum = EXCLUDED.input_sum,
    input_buckets = EXCLUDED.input_buckets, output_sum = EXCLUDED.output_sum,
    output_buckets = EXCLUDED.output_buckets, updated_at = now();
