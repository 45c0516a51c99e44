//! Kibana Query Language: parser, Elasticsearch DSL translator and in-memory evaluator.
