"""A real S3 API for rule-runner's S3 tests: moto's server on 127.0.0.1, filled once.

Started by tests/it/s3.rs; prints one JSON line (endpoint, credentials), then serves until
its standard input closes (the test process ended, however it ended).

Without arguments, one bucket, `trail`: examples/cloudtrail as it is on disk (the local
scan's input, key for key); any credentials are accepted.

With `--auth`, one bucket, `mixed`: a good delivery file, one the reader may not get (an IAM
deny) and a corrupt gzip. After the set-up, requests are authenticated (moto's
INITIAL_NO_AUTH_ACTION_COUNT): only the `reader` user's keys work, and its policy denies the
one object. (A separate server because moto 5 then rejects the signature of any request whose
query has a `/`, as listings under a prefix do, from boto3 as from rule-runner.)
"""

import json
import logging
import os
import socket
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
EXAMPLE = os.path.join(ROOT, "examples", "cloudtrail")
DAY = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/14/"


def example_files():
    found = []
    for folder, _, names in os.walk(EXAMPLE):
        for name in sorted(names):
            path = os.path.join(folder, name)
            found.append((path, os.path.relpath(path, EXAMPLE).replace(os.sep, "/")))
    return sorted(found, key=lambda f: f[1])


def main():
    auth = "--auth" in sys.argv[1:]
    files = example_files()
    good = next(p for p, k in files if "/CloudTrail/" in k and "0920Z" in k)
    if auth:
        # Requests made before auth is enforced: the bucket, its 3 objects, and the IAM
        # user, key and policy.
        os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(1 + 3 + 3)

    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    setup = dict(endpoint_url=endpoint, region_name="us-east-1",
                 aws_access_key_id="setup", aws_secret_access_key="setup")
    s3 = boto3.client("s3", **setup)
    iam = boto3.client("iam", **setup)

    if not auth:
        s3.create_bucket(Bucket="trail")
        for path, key in files:
            with open(path, "rb") as body:
                s3.put_object(Bucket="trail", Key=key, Body=body.read())
        print(json.dumps({"endpoint": endpoint, "access_key_id": "test",
                          "secret_access_key": "test"}), flush=True)
        sys.stdin.read()
        server.stop()
        return

    s3.create_bucket(Bucket="mixed")
    with open(good, "rb") as body:
        data = body.read()
    s3.put_object(Bucket="mixed", Key=DAY + "good.json.gz", Body=data)
    s3.put_object(Bucket="mixed", Key=DAY + "denied.json.gz", Body=data)
    # A gzip header, then bytes that are not deflate.
    s3.put_object(Bucket="mixed", Key=DAY + "corrupt.json.gz",
                  Body=b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"not deflate" * 10)

    iam.create_user(UserName="reader")
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"],
             "Resource": ["arn:aws:s3:::*"]},
            {"Effect": "Deny", "Action": "s3:GetObject",
             "Resource": f"arn:aws:s3:::mixed/{DAY}denied.json.gz"},
        ],
    }
    iam.put_user_policy(UserName="reader", PolicyName="read-trail",
                        PolicyDocument=json.dumps(policy))

    print(json.dumps({"endpoint": endpoint, "access_key_id": key["AccessKeyId"],
                      "secret_access_key": key["SecretAccessKey"]}), flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
