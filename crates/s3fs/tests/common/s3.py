"""Independent S3 checks for the s3fs tests: boto3 against the test's moto_server.

Usage: s3.py ENDPOINT COMMAND ARGS...   (credentials from AWS_ACCESS_KEY_ID/SECRET env)
"""
import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config


def client(endpoint, service="s3"):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, max_pool_connections=32),
    )


def main():
    endpoint, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if cmd == "on-stdin":
        # Started early, run later: the caller may hold files open by then, and forking
        # a child that closes them at exec would flush (commit) them.
        sys.stdin.readline()
        cmd, args = args[0], args[1:]
    s3 = client(endpoint)
    if cmd == "mkbucket":
        s3.create_bucket(Bucket=args[0])
    elif cmd == "get":
        body = s3.get_object(Bucket=args[0], Key=args[1])["Body"].read()
        sys.stdout.buffer.write(body)
    elif cmd == "stat":
        try:
            h = s3.head_object(Bucket=args[0], Key=args[1])
        except s3.exceptions.ClientError:
            print(json.dumps(None))
            return
        body = s3.get_object(Bucket=args[0], Key=args[1])["Body"].read()
        print(json.dumps({"size": h["ContentLength"], "etag": h["ETag"],
                          "sha256": hashlib.sha256(body).hexdigest()}))
    elif cmd == "meta":
        try:
            h = s3.head_object(Bucket=args[0], Key=args[1])
        except s3.exceptions.ClientError:
            print(json.dumps(None))
            return
        print(json.dumps(h.get("Metadata", {})))
    elif cmd == "keys":
        keys, token = [], None
        while True:
            kw = {"Bucket": args[0], "Prefix": args[1] if len(args) > 1 else ""}
            if token:
                kw["ContinuationToken"] = token
            r = s3.list_objects_v2(**kw)
            keys += [o["Key"] for o in r.get("Contents", [])]
            token = r.get("NextContinuationToken")
            if not r.get("IsTruncated"):
                break
            if not token:
                kw.pop("ContinuationToken", None)
                kw["StartAfter"] = keys[-1]
                r = None
                token = None
                # continue with StartAfter
                while True:
                    r = s3.list_objects_v2(**kw)
                    keys += [o["Key"] for o in r.get("Contents", [])]
                    if not r.get("IsTruncated"):
                        break
                    kw["StartAfter"] = keys[-1]
                break
        print(json.dumps(keys))
    elif cmd == "uploads":
        r = s3.list_multipart_uploads(Bucket=args[0])
        print(json.dumps(sorted(u["Key"] for u in r.get("Uploads", []))))
    elif cmd == "set-meta":
        # What `chmod` through another S3 client does: a copy onto itself with new metadata.
        bucket, key, field, value = args
        meta = s3.head_object(Bucket=bucket, Key=key).get("Metadata", {})
        meta[field] = value
        s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                       Metadata=meta, MetadataDirective="REPLACE")
    elif cmd == "put":
        s3.put_object(Bucket=args[0], Key=args[1], Body=args[2].encode())
    elif cmd == "fill":
        bucket, prefix, n = args[0], args[1], int(args[2])
        with ThreadPoolExecutor(16) as ex:
            list(ex.map(lambda i: s3.put_object(Bucket=bucket, Key=f"{prefix}{i:05}", Body=b"x"),
                        range(n)))
    elif cmd == "auth-setup":
        iam = client(endpoint, "iam")
        iam.create_user(UserName="tester")
        iam.put_user_policy(UserName="tester", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="tester")["AccessKey"]
        s3.create_bucket(Bucket=args[0])
        print(key["AccessKeyId"], key["SecretAccessKey"])
    elif cmd == "revoke-key":
        # The key deletes itself: every request signed with it is refused from now on.
        iam = client(endpoint, "iam")
        iam.delete_access_key(UserName="tester", AccessKeyId=os.environ["AWS_ACCESS_KEY_ID"])
    else:
        sys.exit(f"unknown command {cmd}")


main()
