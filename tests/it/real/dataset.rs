//! The real CloudTrail datasets of `tests/data/cloudtrail/` (Stratus Red Team, Invictus IR)
//! and the example trail, loaded once into the engine as one data stream with the event
//! times they carry, for every test that searches them.

use std::path::PathBuf;
use std::sync::OnceLock;

use ::elasticsearch::http::Method;
use rule_runner::cloudtrail::{DocumentReader, Flavor, NormalizeOptions, discover};
use rule_runner::elasticsearch::Call;
use rule_runner::ops::load::{self, LoadOptions, NoProgress};
use serde_json::Value;

use super::engine;
use crate::util::{data, repo};

pub struct Dataset {
    /// The data stream (`logs-aws.cloudtrail-<namespace>`).
    pub index: String,
    pub namespace: String,
    /// The same records, normalized in memory as `scan` sees them.
    pub documents: Vec<Value>,
}

pub fn inputs() -> Vec<PathBuf> {
    vec![
        data("cloudtrail/stratus-red-team"),
        data("cloudtrail/invictus-ir"),
        repo("examples/cloudtrail"),
    ]
}

static DATASET: OnceLock<Option<Dataset>> = OnceLock::new();

/// The loaded dataset, or `None` when no engine is available (the skip was printed).
pub fn cloudtrail(test: &str) -> Option<&'static Dataset> {
    engine::engine(test)?;
    DATASET
        .get_or_init(|| {
            // Its own thread and runtime: each test's runtime is gone when that test ends,
            // and the load must not be tied to the first test that asked for it.
            std::thread::spawn(load_once)
                .join()
                .expect("loading the dataset panicked")
        })
        .as_ref()
}

fn load_once() -> Option<Dataset> {
    let engine = engine::engine("dataset")?;
    let namespace = format!("rrit{}", uuid::Uuid::new_v4().simple());
    let index = format!("logs-aws.cloudtrail-{namespace}");
    let discovered = discover(&inputs());
    assert!(discovered.problems.is_empty(), "{:?}", discovered.problems);
    let files = discovered.files;
    let options = NormalizeOptions {
        namespace: namespace.clone(),
        ..NormalizeOptions::default()
    };
    let mut documents = Vec::new();
    for file in &files {
        for doc in DocumentReader::open(file, &options, None) {
            documents.push(doc.expect("the shipped datasets normalize").value);
        }
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let opts = LoadOptions {
            index: index.clone(),
            flavor: Flavor::Integration,
            shift_to_now: false,
            batch_size: 500,
            install_template: true,
            now: chrono::Utc::now(),
        };
        let summary = load::load(&engine.client, files.clone(), &opts, &NoProgress)
            .await
            .expect("the datasets load");
        assert_eq!(summary.rejected, 0, "{:?}", summary.rejections);
        assert_eq!(summary.indexed as usize, documents.len());
        engine
            .client
            .send_ok(&Call::new(
                "refresh",
                Method::Post,
                format!("/{index}/_refresh"),
            ))
            .await
            .expect("refresh");
    });
    Some(Dataset {
        index,
        namespace,
        documents,
    })
}
