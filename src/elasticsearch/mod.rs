//! The Elasticsearch adapter: event source, alert sink and state store over the official client.
