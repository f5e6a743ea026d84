"""Compatibility tests of the connection APIs: boto3 (codeconnections and
codestar-connections) and the aws CLI against a running pipelined.

Run by internal/server/connections_compat_test.go, which passes the endpoint
and credentials through the environment as for test_codepipeline.py.
Nothing here is specific to pipelined but the account id the ARNs carry.
"""

import json
import os
import subprocess
import unittest

import boto3
import botocore.exceptions
from botocore.config import Config

CFG = Config(retries={"max_attempts": 1})


def aws(*args):
    out = subprocess.run(["aws", *args, "--output", "json"], capture_output=True, text=True)
    return out.returncode, out.stdout, out.stderr


class Boto3Test(unittest.TestCase):
    def test_codeconnections_lifecycle(self):
        cc = boto3.client("codeconnections", config=CFG)
        arn = cc.create_connection(ProviderType="GitHub", ConnectionName="boto",
                                   Tags=[{"Key": "k", "Value": "v"}])["ConnectionArn"]
        self.assertRegex(arn, r"^arn:aws:codeconnections:us-east-1:\d{12}:connection/[0-9a-f-]{36}$")
        conn = cc.get_connection(ConnectionArn=arn)["Connection"]
        self.assertEqual(conn["ConnectionStatus"], "PENDING")
        self.assertEqual(conn["ProviderType"], "GitHub")
        self.assertEqual(cc.list_tags_for_resource(ResourceArn=arn)["Tags"], [{"Key": "k", "Value": "v"}])
        cc.tag_resource(ResourceArn=arn, Tags=[{"Key": "k2", "Value": ""}])
        cc.untag_resource(ResourceArn=arn, TagKeys=["k"])
        self.assertEqual(cc.list_tags_for_resource(ResourceArn=arn)["Tags"], [{"Key": "k2", "Value": ""}])
        arns, kwargs = [], {"MaxResults": 1}
        while True:  # botocore has no paginator for it: follow NextToken
            page = cc.list_connections(**kwargs)
            self.assertLessEqual(len(page["Connections"]), 1)
            arns += [c["ConnectionArn"] for c in page["Connections"]]
            if "NextToken" not in page:
                break
            kwargs["NextToken"] = page["NextToken"]
        self.assertIn(arn, arns)
        cc.delete_connection(ConnectionArn=arn)
        with self.assertRaises(cc.exceptions.ResourceNotFoundException):
            cc.get_connection(ConnectionArn=arn)

    def test_codestar_hosts(self):
        cs = boto3.client("codestar-connections", config=CFG)
        host = cs.create_host(Name="forge", ProviderType="GitLabSelfManaged", ProviderEndpoint="https://git.example.com")["HostArn"]
        self.assertIn(":codestar-connections:", host)
        got = cs.get_host(HostArn=host)
        self.assertEqual((got["Name"], got["ProviderEndpoint"], got["Status"]), ("forge", "https://git.example.com", "AVAILABLE"))
        arn = cs.create_connection(HostArn=host, ConnectionName="on-forge")["ConnectionArn"]
        self.assertEqual(cs.get_connection(ConnectionArn=arn)["Connection"]["HostArn"], host)
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            cs.delete_host(HostArn=host)
        self.assertEqual(e.exception.response["Error"]["Code"], "ResourceUnavailableException")
        cs.delete_connection(ConnectionArn=arn)
        cs.delete_host(HostArn=host)

    def test_validation(self):
        cc = boto3.client("codeconnections", config=CFG)
        with self.assertRaises(botocore.exceptions.ClientError) as e:
            cc.create_connection(ProviderType="GitLabSelfManaged", ConnectionName="x")
        self.assertEqual(e.exception.response["Error"]["Code"], "ValidationException")
        self.assertIn("HostArn", e.exception.response["Error"]["Message"])


class CLITest(unittest.TestCase):
    def test_codestar_connections_cli(self):
        rc, out, err = aws("codestar-connections", "create-connection", "--provider-type", "GitLab", "--connection-name", "cli")
        self.assertEqual(rc, 0, err)
        arn = json.loads(out)["ConnectionArn"]
        rc, out, err = aws("codestar-connections", "get-connection", "--connection-arn", arn)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["Connection"]["ConnectionStatus"], "PENDING")
        rc, out, err = aws("codestar-connections", "list-connections", "--provider-type-filter", "GitLab")
        self.assertEqual(rc, 0, err)
        self.assertIn(arn, [c["ConnectionArn"] for c in json.loads(out)["Connections"]])
        rc, out, err = aws("codestar-connections", "delete-connection", "--connection-arn", arn)
        self.assertEqual(rc, 0, err)
        rc, out, err = aws("codestar-connections", "get-connection", "--connection-arn", arn)
        self.assertNotEqual(rc, 0)
        self.assertIn("ResourceNotFoundException", err)

    def test_codeconnections_cli(self):
        rc, out, err = aws("codeconnections", "list-hosts")
        self.assertEqual(rc, 0, err)
        self.assertIn("Hosts", json.loads(out))


if __name__ == "__main__":
    unittest.main(verbosity=2)
