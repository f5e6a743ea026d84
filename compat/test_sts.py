"""STS GetCallerIdentity with boto3 and the aws CLI against a running pipelined.

Run by internal/server/compat_test.go (TestCompatibilitySTS) with the
environment the README gives users: AWS_ENDPOINT_URL, the generated
AWS_SHARED_CREDENTIALS_FILE, AWS_DEFAULT_REGION. The account is 000000000000.
"""

import json
import os
import subprocess
import unittest

import boto3
import botocore.exceptions
from botocore.config import Config

ACCOUNT = "000000000000"
NO_RETRY = Config(retries={"max_attempts": 1})


class STSTest(unittest.TestCase):
    def test_boto3_get_caller_identity(self):
        out = boto3.client("sts", config=NO_RETRY).get_caller_identity()
        self.assertEqual(out["Arn"], f"arn:aws:iam::{ACCOUNT}:root")
        self.assertEqual(out["Account"], ACCOUNT)
        self.assertEqual(out["UserId"], ACCOUNT)
        self.assertTrue(out["ResponseMetadata"]["RequestId"])

    def test_cli_get_caller_identity(self):
        # As a new user checks their setup: the endpoint on the command line.
        env = dict(os.environ)
        endpoint = env.pop("AWS_ENDPOINT_URL")
        out = subprocess.run(["aws", "sts", "get-caller-identity", "--endpoint-url", endpoint, "--output", "json"],
                             env=env, capture_output=True, text=True, check=True)
        ident = json.loads(out.stdout)
        self.assertEqual(ident, {"UserId": ACCOUNT, "Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:root"})

    def test_other_actions_are_invalid(self):
        sts = boto3.client("sts", config=NO_RETRY)
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/x", RoleSessionName="session")
        err = cm.exception.response
        self.assertEqual(err["Error"]["Code"], "InvalidAction")
        self.assertEqual(err["Error"]["Message"], "Could not find operation AssumeRole for version 2011-06-15")
        self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], 400)

    def test_wrong_region_is_named(self):
        sts = boto3.client("sts", region_name="eu-west-1", config=NO_RETRY)
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            sts.get_caller_identity()
        err = cm.exception.response["Error"]
        self.assertEqual(err["Code"], "SignatureDoesNotMatch")
        self.assertIn("this server expects 'us-east-1'", err["Message"])

    def test_wrong_secret(self):
        creds = boto3.Session().get_credentials()
        sts = boto3.client("sts", aws_access_key_id=creds.access_key, aws_secret_access_key="wrong", config=NO_RETRY)
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            sts.get_caller_identity()
        self.assertEqual(cm.exception.response["Error"]["Code"], "SignatureDoesNotMatch")
        self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)


if __name__ == "__main__":
    unittest.main(verbosity=2)
