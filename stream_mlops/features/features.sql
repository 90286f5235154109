-- The feature store's statements (the functions are in sql/0012_features.sql).

-- name: define_feature
SELECT mlops.define_feature(name => %(name)s, entity_type => %(entity_type)s,
                            value_type => %(value_type)s, ttl => %(ttl)s,
                            description => %(description)s,
                            vector_length => %(vector_length)s, owner => %(owner)s,
                            tags => %(tags)s, tenant_id => %(tenant_id)s);

-- name: list_features
SELECT tenant_id, entity_type, name, value_type, vector_length,
       extract(epoch FROM ttl)::double precision AS ttl_seconds, description, owner, tags,
       created_at, updated_at
FROM mlops.list_features(%(entity_type)s, %(tenant_id)s);

-- name: put_features
SELECT written, quarantined
FROM mlops.put_features(%(entity_type)s, %(rows)s, %(tenant_id)s, %(max_future_seconds)s);

-- name: get_online_features
SELECT entity_id, features
FROM mlops.get_online_features(%(entity_type)s, %(entity_ids)s, %(names)s, %(tenant_id)s);

-- name: get_historical_features
SELECT features
FROM mlops.get_historical_features(%(entity_type)s, %(entity_ids)s, %(timestamps)s,
                                   %(names)s, %(tenant_id)s);
