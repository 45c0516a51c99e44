//! Operations: the Docker files, Kibana saved objects, health and metrics endpoints, leases
//! for scale-out, and the `load` command.

mod docker;
mod http;
mod kibana;
mod kibana_rules;
mod lease;
mod load;
mod run;
mod scale_out;

use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Answer every `verb` request to `server`, whatever its path, with `reply`.
async fn on(server: &MockServer, verb: &str, reply: ResponseTemplate) {
    Mock::given(method(verb))
        .respond_with(reply)
        .mount(server)
        .await;
}

/// As [`on`], and the test fails unless exactly `times` such requests arrive.
async fn on_times(server: &MockServer, verb: &str, reply: ResponseTemplate, times: u64) {
    Mock::given(method(verb))
        .respond_with(reply)
        .expect(times)
        .mount(server)
        .await;
}
