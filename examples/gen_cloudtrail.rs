//! Deterministic CloudTrail generator for benchmarks: S3 delivery files (`.json.gz`) with a
//! realistic mix of services and a known number of attack events.
//!
//! ```sh
//! cargo run --release --example gen_cloudtrail -- --out target/bench-data --records 1000000
//! ```
//!
//! The same arguments always give the same bytes. Attacks (exactly `--attacks`, default 100):
//! half are `AddPermission20150331v2` granting `principal: "*"` (the public-invocation rule),
//! half are layer attacks (`PublishLayerVersion20181031` and `UpdateFunctionConfiguration...`
//! with `layers`). The benign mix includes the near misses: service-principal grants, failed
//! grants, and configuration changes from a deployment role (which the shipped layer rule also
//! matches: see the README). Every other event is benign and matches no shipped rule.

#![allow(clippy::print_stdout)]

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

/// SplitMix64: a tiny PRNG whose output is fixed by its definition, so generated data stays
/// identical across `rand` releases (whose `StdRng` may change algorithm).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48 & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }
}

pub struct Options {
    pub out: PathBuf,
    pub records: u64,
    pub attacks: u64,
    pub per_file: u64,
    pub seed: u64,
}

/// What was written.
#[derive(Debug, Default, Clone, Copy)]
pub struct Generated {
    pub files: u64,
    pub records: u64,
    pub public_invocation_attacks: u64,
    pub layer_attacks: u64,
    /// Layer-free `UpdateFunctionConfiguration` calls (the shipped layer rule matches them).
    pub layer_free_config_changes: u64,
    pub uncompressed_bytes: u64,
}

const ACCOUNT: &str = "123456789012";
const REGIONS: [&str; 4] = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"];
const CLI: &str =
    "aws-cli/2.15.40 Python/3.11.8 Linux/6.5.0-1020-aws exe/x86_64.ubuntu.22 prompt/off";
const SDK: &str = "aws-sdk-go-v2/1.26.1 os/linux lang/go#1.22.2 md/GOOS#linux md/GOARCH#amd64";
const CONSOLE: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

fn identity(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0..=5 => {
            let role = rng.pick(&[
                "app-backend",
                "etl-runner",
                "deploy-pipeline",
                "monitoring",
                "ci-runner",
            ]);
            let session = format!("i-0{:016x}", rng.next() >> 4);
            json!({"type": "AssumedRole", "principalId": format!("AROA{:016X}:{session}", rng.next() >> 1),
                "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}"), "accountId": ACCOUNT,
                "accessKeyId": format!("ASIA{:016X}", rng.next() >> 1),
                "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": format!("AROA{:016X}", rng.next() >> 1),
                    "arn": format!("arn:aws:iam::{ACCOUNT}:role/{role}"), "accountId": ACCOUNT, "userName": role},
                    "webIdFederationData": {}, "attributes": {"creationDate": "2024-05-14T08:00:00Z", "mfaAuthenticated": "false"}}})
        }
        6..=8 => {
            let user = rng.pick(&["alice", "bob", "carol", "dave", "erin", "svc-backup"]);
            json!({"type": "IAMUser", "principalId": format!("AIDA{:016X}", rng.next() >> 1),
                "arn": format!("arn:aws:iam::{ACCOUNT}:user/{user}"), "accountId": ACCOUNT,
                "accessKeyId": format!("AKIA{:016X}", rng.next() >> 1), "userName": user})
        }
        _ => {
            json!({"type": "AWSService", "invokedBy": rng.pick(&["lambda.amazonaws.com", "ec2.amazonaws.com", "cloudformation.amazonaws.com"])})
        }
    }
}

/// (eventSource, eventName, readOnly, requestParameters, responseElements) of a benign call.
fn benign_call(rng: &mut Rng, n: u64) -> (&'static str, String, bool, Value, Value) {
    let bucket = format!("acme-data-{}", rng.below(40));
    let func = format!("svc-{}", rng.below(60));
    match rng.below(100) {
        0..=17 => (
            "sts.amazonaws.com",
            "AssumeRole".into(),
            false,
            json!({"roleArn": format!("arn:aws:iam::{ACCOUNT}:role/app-backend"), "roleSessionName": format!("s-{n}"), "durationSeconds": 3600}),
            json!({"credentials": {"accessKeyId": format!("ASIA{:016X}", rng.next() >> 1), "expiration": "May 14, 2024, 10:00:00 AM", "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLE"},
                   "assumedRoleUser": {"assumedRoleId": format!("AROA{:016X}:s-{n}", rng.next() >> 1), "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/app-backend/s-{n}")}}),
        ),
        18..=35 => (
            "ec2.amazonaws.com",
            rng.pick(&[
                "DescribeInstances",
                "DescribeVolumes",
                "DescribeSecurityGroups",
                "DescribeSubnets",
                "DescribeNetworkInterfaces",
            ])
            .to_string(),
            true,
            json!({"maxResults": 1000, "filterSet": {"items": [{"name": "tag:env", "valueSet": {"items": [{"value": "prod"}]}}]}}),
            Value::Null,
        ),
        36..=50 => (
            "kms.amazonaws.com",
            rng.pick(&["Decrypt", "GenerateDataKey", "Encrypt"])
                .to_string(),
            true,
            json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT", "keyId": format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{}", rng.uuid()),
                   "encryptionContext": {"aws:s3:arn": format!("arn:aws:s3:::{bucket}/obj-{}", rng.below(1_000_000))}}),
            Value::Null,
        ),
        51..=60 => (
            "s3.amazonaws.com",
            rng.pick(&[
                "GetBucketAcl",
                "GetBucketPolicy",
                "ListBuckets",
                "GetBucketLocation",
                "PutBucketTagging",
            ])
            .to_string(),
            true,
            json!({"bucketName": bucket, "Host": format!("{bucket}.s3.amazonaws.com"), "acl": ""}),
            Value::Null,
        ),
        61..=67 => (
            "iam.amazonaws.com",
            rng.pick(&[
                "GetRole",
                "ListRoles",
                "GetPolicy",
                "ListAttachedRolePolicies",
                "GetUser",
            ])
            .to_string(),
            true,
            json!({"roleName": rng.pick(&["app-backend", "etl-runner", "monitoring"])}),
            Value::Null,
        ),
        68..=74 => (
            "logs.amazonaws.com",
            rng.pick(&["CreateLogStream", "DescribeLogGroups", "PutRetentionPolicy"])
                .to_string(),
            false,
            json!({"logGroupName": format!("/aws/lambda/{func}"), "logStreamName": format!("2024/05/14/[$LATEST]{:032x}", rng.next())}),
            Value::Null,
        ),
        75..=80 => (
            "secretsmanager.amazonaws.com",
            "GetSecretValue".into(),
            true,
            json!({"secretId": format!("arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod/db-{}", rng.below(10))}),
            Value::Null,
        ),
        81..=85 => (
            "ssm.amazonaws.com",
            rng.pick(&[
                "GetParameter",
                "GetParameters",
                "DescribeInstanceInformation",
            ])
            .to_string(),
            true,
            json!({"name": format!("/prod/app/param-{}", rng.below(200)), "withDecryption": true}),
            Value::Null,
        ),
        86..=89 => (
            "dynamodb.amazonaws.com",
            rng.pick(&["DescribeTable", "ListTables", "DescribeContinuousBackups"])
                .to_string(),
            true,
            json!({"tableName": format!("orders-{}", rng.below(8))}),
            Value::Null,
        ),
        90..=94 => (
            "lambda.amazonaws.com",
            rng.pick(&[
                "GetFunction20150331v2",
                "ListFunctions20150331",
                "GetPolicy20150331v2",
                "ListVersionsByFunction20150331",
            ])
            .to_string(),
            true,
            json!({"functionName": func}),
            Value::Null,
        ),
        95 => (
            "cloudtrail.amazonaws.com",
            rng.pick(&["LookupEvents", "DescribeTrails", "GetTrailStatus"])
                .to_string(),
            true,
            json!({"maxResults": 50}),
            Value::Null,
        ),
        96 => (
            "lambda.amazonaws.com",
            "UpdateFunctionConfiguration20150331v2".into(),
            false,
            // A layer-free configuration change by the deployment pipeline.
            json!({"functionName": func, "timeout": 60, "memorySize": 512, "environment": {}}),
            json!({"functionName": func, "timeout": 60, "memorySize": 512, "version": "$LATEST"}),
        ),
        97 => (
            "lambda.amazonaws.com",
            "AddPermission20150331v2".into(),
            false,
            // Near miss: a service principal scoped to a bucket.
            json!({"functionName": func, "statementId": format!("s3-{n}"), "action": "lambda:InvokeFunction",
                   "principal": "s3.amazonaws.com", "sourceArn": format!("arn:aws:s3:::{bucket}"), "sourceAccount": ACCOUNT}),
            json!({"statement": format!("{{\"Sid\":\"s3-{n}\",\"Effect\":\"Allow\",\"Principal\":{{\"Service\":\"s3.amazonaws.com\"}},\"Action\":\"lambda:InvokeFunction\",\"Resource\":\"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{func}\"}}")}),
        ),
        98 => (
            "lambda.amazonaws.com",
            "UpdateFunctionCode20150331v2".into(),
            false,
            json!({"functionName": func, "s3Bucket": "acme-deploy-artifacts", "s3Key": format!("{func}/{n}.zip"), "publish": false, "dryRun": false}),
            json!({"functionName": func, "codeSize": 48213, "timeout": 30, "memorySize": 256, "version": "$LATEST"}),
        ),
        _ => (
            "signin.amazonaws.com",
            "ConsoleLogin".into(),
            false,
            Value::Null,
            json!({"ConsoleLogin": "Success"}),
        ),
    }
}

fn record(
    rng: &mut Rng,
    time: &str,
    region: &str,
    call: (&str, String, bool, Value, Value),
    ident: Value,
    failed: bool,
) -> Value {
    let (source, name, read_only, request, response) = call;
    let ip = match rng.below(4) {
        0 => source.to_string(),
        _ => format!(
            "{}.{}.{}.{}",
            rng.pick(&[198u8, 203, 192, 100]),
            rng.below(256),
            rng.below(256),
            1 + rng.below(254)
        ),
    };
    let mut r = json!({"eventVersion": "1.09", "userIdentity": ident, "eventTime": time, "eventSource": source,
        "eventName": name, "awsRegion": region, "sourceIPAddress": ip,
        "userAgent": *rng.pick(&[CLI, SDK, CONSOLE, "Boto3/1.34.100 md/Botocore#1.34.100 ua/2.0 os/linux#6.1.0"])});
    let map = r.as_object_mut().expect("a record is an object");
    if failed {
        map.insert("errorCode".into(), json!("AccessDenied"));
        map.insert(
            "errorMessage".into(),
            json!("User is not authorized to perform this operation"),
        );
    }
    map.insert("requestParameters".into(), request);
    map.insert("responseElements".into(), response);
    map.insert("requestID".into(), json!(rng.uuid()));
    map.insert("eventID".into(), json!(rng.uuid()));
    map.insert("readOnly".into(), json!(read_only));
    map.insert("eventType".into(), json!("AwsApiCall"));
    map.insert("managementEvent".into(), json!(true));
    map.insert("recipientAccountId".into(), json!(ACCOUNT));
    map.insert("eventCategory".into(), json!("Management"));
    map.insert("tlsDetails".into(), json!({"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
        "clientProvidedHostHeader": format!("{}.{region}.amazonaws.com", source.split('.').next().unwrap_or("api"))}));
    r
}

fn attack(rng: &mut Rng, k: u64) -> (&'static str, String, bool, Value, Value) {
    let func = format!("svc-{}", rng.below(60));
    let layer = format!("arn:aws:lambda:us-east-1:999988887777:layer:telemetry-{k}:1");
    match k % 4 {
        0 | 2 => (
            "lambda.amazonaws.com",
            "AddPermission20150331v2".into(),
            false,
            json!({"functionName": func, "statementId": format!("pub-{k}"), "action": "lambda:InvokeFunction", "principal": "*"}),
            json!({"statement": format!("{{\"Sid\":\"pub-{k}\",\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"lambda:InvokeFunction\",\"Resource\":\"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{func}\"}}")}),
        ),
        1 => (
            "lambda.amazonaws.com",
            "PublishLayerVersion20181031".into(),
            false,
            json!({"layerName": format!("telemetry-{k}"), "content": {"s3Bucket": "x-drop", "s3Key": "layer.zip"}, "compatibleRuntimes": ["python3.12"]}),
            json!({"layerVersionArn": layer, "version": 1, "content": {"codeSize": 5120}}),
        ),
        _ => (
            "lambda.amazonaws.com",
            "UpdateFunctionConfiguration20150331v2".into(),
            false,
            json!({"functionName": func, "layers": [layer]}),
            json!({"functionName": func, "layers": [{"arn": layer, "codeSize": 5120}], "timeout": 30, "memorySize": 256}),
        ),
    }
}

/// Write the data set; returns what it contains.
pub fn generate(opts: &Options) -> std::io::Result<Generated> {
    let mut rng = Rng(opts.seed);
    let mut out = Generated::default();
    // Attacks spread evenly through the records.
    let every = (opts.records / opts.attacks.max(1)).max(1);
    let mut attacks_left = opts.attacks.min(opts.records);
    let mut n = 0u64;
    let mut file_no = 0u64;
    while n < opts.records {
        let region = REGIONS[(file_no % REGIONS.len() as u64) as usize];
        let minute = file_no * 5;
        let (hour, min) = ((minute / 60) % 24, minute % 60);
        let day = 1 + (minute / 60 / 24) % 28;
        let dir = opts.out.join(format!(
            "AWSLogs/{ACCOUNT}/CloudTrail/{region}/2024/05/{day:02}"
        ));
        fs::create_dir_all(&dir)?;
        let name = format!(
            "{ACCOUNT}_CloudTrail_{region}_202405{day:02}T{hour:02}{min:02}Z_{:016x}.json.gz",
            rng.next()
        );
        let file = BufWriter::new(File::create(dir.join(name))?);
        let mut gz = Counted {
            inner: GzEncoder::new(file, Compression::default()),
            bytes: 0,
        };
        gz.write_all(b"{\"Records\":[")?;
        let in_file = opts.per_file.min(opts.records - n);
        for i in 0..in_file {
            let sec = (i * 300 / in_file.max(1)) % 300;
            let time = format!(
                "2024-05-{day:02}T{hour:02}:{:02}:{:02}Z",
                min + sec / 60,
                sec % 60
            );
            let ident = identity(&mut rng);
            let is_attack = attacks_left > 0 && n % every == every / 2;
            let (call, failed) = if is_attack {
                attacks_left -= 1;
                let k = opts.attacks - attacks_left - 1;
                if k % 4 == 0 || k % 4 == 2 {
                    out.public_invocation_attacks += 1;
                } else {
                    out.layer_attacks += 1;
                }
                (attack(&mut rng, k), false)
            } else {
                let call = benign_call(&mut rng, n);
                // About 4% of benign calls fail; failed calls never alert.
                (call, rng.below(25) == 0)
            };
            if !failed && call.1.starts_with("UpdateFunctionConfiguration") && !is_attack {
                out.layer_free_config_changes += 1;
            }
            let rec = record(&mut rng, &time, region, call, ident, failed);
            if i > 0 {
                gz.write_all(b",")?;
            }
            serde_json::to_writer(&mut gz, &rec)?;
            n += 1;
        }
        gz.write_all(b"]}")?;
        out.uncompressed_bytes += gz.bytes;
        gz.inner.finish()?.flush()?;
        file_no += 1;
    }
    out.files = file_no;
    out.records = n;
    Ok(out)
}

/// Counts the uncompressed bytes written.
struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: gen_cloudtrail --out DIR [--records N (1000000)] [--attacks N (100)] \
         [--per-file N (5000)] [--seed N (1)]"
    );
    std::process::exit(1)
}

#[allow(dead_code)] // also compiled into the benchmark, which has its own main
fn main() {
    let mut opts = Options {
        out: PathBuf::new(),
        records: 1_000_000,
        attacks: 100,
        per_file: 5_000,
        seed: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        let mut number = || value().parse::<u64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--out" => opts.out = PathBuf::from(args.next().unwrap_or_else(|| usage())),
            "--records" => opts.records = number(),
            "--attacks" => opts.attacks = number(),
            "--per-file" => opts.per_file = number().max(1),
            "--seed" => opts.seed = number(),
            _ => usage(),
        }
    }
    if opts.out.as_os_str().is_empty() {
        usage();
    }
    if Path::new(&opts.out).exists() {
        eprintln!(
            "{} exists; remove it or choose another --out",
            opts.out.display()
        );
        std::process::exit(1);
    }
    match generate(&opts) {
        Ok(g) => println!(
            "{} records in {} files under {} ({:.1} MB uncompressed): {} public-invocation attacks, \
             {} layer attacks, {} layer-free UpdateFunctionConfiguration calls",
            g.records,
            g.files,
            opts.out.display(),
            g.uncompressed_bytes as f64 / 1e6,
            g.public_invocation_attacks,
            g.layer_attacks,
            g.layer_free_config_changes
        ),
        Err(e) => {
            eprintln!("error: writing {}: {e}", opts.out.display());
            std::process::exit(1);
        }
    }
}
