"""Compatibility tests: boto3 and the aws CLI against a running pipelined.

Run by the Go test internal/server/compat_test.go, which starts a server and
passes its endpoint and credentials through the environment:
AWS_ENDPOINT_URL, AWS_SHARED_CREDENTIALS_FILE (the file pipelined generated),
AWS_DEFAULT_REGION. Nothing here is specific to pipelined: the same code runs
against AWS CodePipeline.
"""

import copy
import json
import os
import subprocess
import tempfile
import time
import unittest

import boto3
import botocore.exceptions
from botocore.config import Config

ROLE = "arn:aws:iam::000000000000:role/pipelined"


def example_pipeline(name):
    return {
        "name": name,
        "roleArn": ROLE,
        "artifactStore": {"type": "S3", "location": "artifacts"},
        "stages": [
            {"name": "Source", "actions": [{
                "name": "Fetch",
                "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"S3Bucket": "src", "S3ObjectKey": "app.zip", "PollForSourceChanges": "false"},
                "outputArtifacts": [{"name": "App"}],
            }]},
            {"name": "Approve", "actions": [{
                "name": "Gate",
                "actionTypeId": {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"},
                "configuration": {"CustomData": "ship it?"},
            }]},
            {"name": "Deploy", "actions": [{
                "name": "ToBucket",
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"BucketName": "site", "Extract": "true"},
                "inputArtifacts": [{"name": "App"}],
                "runOrder": 1,
            }]},
        ],
    }


def client():
    return boto3.client("codepipeline", config=Config(retries={"max_attempts": 1}))


class Boto3Test(unittest.TestCase):
    def setUp(self):
        self.cp = client()

    def test_lifecycle(self):
        cp = self.cp
        out = cp.create_pipeline(pipeline=example_pipeline("b3-life"), tags=[{"key": "team", "value": "web"}])
        self.assertEqual(out["pipeline"]["version"], 1)
        self.assertEqual(out["tags"], [{"key": "team", "value": "web"}])

        got = cp.get_pipeline(name="b3-life")
        meta = got["metadata"]
        self.assertEqual(meta["pipelineArn"], "arn:aws:codepipeline:us-east-1:000000000000:b3-life")
        # botocore parses epoch-second timestamps into datetimes.
        self.assertEqual(meta["created"].year >= 2024, True)
        self.assertEqual(got["pipeline"]["stages"][1]["actions"][0]["configuration"]["CustomData"], "ship it?")

        p = got["pipeline"]
        p["stages"][1]["actions"][0]["configuration"]["CustomData"] = "v2"
        up = cp.update_pipeline(pipeline=p)
        self.assertEqual(up["pipeline"]["version"], 2)
        v1 = cp.get_pipeline(name="b3-life", version=1)
        self.assertEqual(v1["pipeline"]["stages"][1]["actions"][0]["configuration"]["CustomData"], "ship it?")

        arn = meta["pipelineArn"]
        cp.tag_resource(resourceArn=arn, tags=[{"key": "env", "value": "prod"}])
        cp.untag_resource(resourceArn=arn, tagKeys=["team"])
        self.assertEqual(cp.list_tags_for_resource(resourceArn=arn)["tags"], [{"key": "env", "value": "prod"}])

        cp.delete_pipeline(name="b3-life")
        with self.assertRaises(cp.exceptions.PipelineNotFoundException):
            cp.get_pipeline(name="b3-life")

    def test_list_pagination(self):
        for i in range(5):
            self.cp.create_pipeline(pipeline=example_pipeline("b3-page-%d" % i))
        names = []
        pages = 0
        for page in self.cp.get_paginator("list_pipelines").paginate(PaginationConfig={"PageSize": 2}):
            pages += 1
            names += [p["name"] for p in page["pipelines"] if p["name"].startswith("b3-page-")]
        self.assertEqual(names, ["b3-page-%d" % i for i in range(5)])
        self.assertGreaterEqual(pages, 3)

    def test_errors(self):
        cp = self.cp
        cp.create_pipeline(pipeline=example_pipeline("b3-dup"))
        with self.assertRaises(cp.exceptions.PipelineNameInUseException):
            cp.create_pipeline(pipeline=example_pipeline("b3-dup"))
        one_stage = example_pipeline("b3-short")
        one_stage["stages"] = one_stage["stages"][:1]
        with self.assertRaises(cp.exceptions.InvalidStructureException):
            cp.create_pipeline(pipeline=one_stage)
        bad_action = example_pipeline("b3-badaction")
        del bad_action["stages"][2]["actions"][0]["configuration"]["BucketName"]
        with self.assertRaises(cp.exceptions.InvalidActionDeclarationException):
            cp.create_pipeline(pipeline=bad_action)
        with self.assertRaises(cp.exceptions.ValidationException) as ctx:
            cp.get_pipeline(name="x" * 101)
        self.assertIn("at 'name' failed to satisfy constraint", str(ctx.exception))
        with self.assertRaises(cp.exceptions.PipelineVersionNotFoundException):
            cp.get_pipeline(name="b3-dup", version=9)

    def test_wrong_secret_is_refused(self):
        bad = boto3.client("codepipeline", aws_access_key_id=boto3.Session().get_credentials().access_key,
                           aws_secret_access_key="wrong", config=Config(retries={"max_attempts": 1}))
        with self.assertRaises(botocore.exceptions.ClientError) as ctx:
            bad.list_pipelines()
        self.assertEqual(ctx.exception.response["Error"]["Code"], "InvalidSignatureException")
        self.assertEqual(ctx.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)

    def test_custom_action_type(self):
        cp = self.cp
        out = cp.create_custom_action_type(
            category="Build", provider="B3Builder", version="1",
            configurationProperties=[{"name": "Project", "required": True, "key": True, "secret": False, "queryable": True}],
            inputArtifactDetails={"minimumCount": 1, "maximumCount": 1},
            outputArtifactDetails={"minimumCount": 0, "maximumCount": 1},
        )
        self.assertEqual(out["actionType"]["id"]["owner"], "Custom")
        listed = cp.list_action_types(actionOwnerFilter="Custom")["actionTypes"]
        self.assertIn("B3Builder", [t["id"]["provider"] for t in listed])
        cp.delete_custom_action_type(category="Build", provider="B3Builder", version="1")
        listed = cp.list_action_types(actionOwnerFilter="Custom")["actionTypes"]
        self.assertNotIn("B3Builder", [t["id"]["provider"] for t in listed])


def aws(*args, input_json=None, check=True):
    """Runs the aws CLI and returns (exit code, parsed stdout or None, stderr)."""
    cmd = ["aws", "codepipeline", *args, "--output", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(cmd), proc.returncode, proc.stderr))
    out = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, out, proc.stderr


class CLITest(unittest.TestCase):
    def test_round_trip_through_cli_input_json(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "create.json")
            p = example_pipeline("cli-orig")
            p["variables"] = [{"name": "env", "defaultValue": "prod", "description": "target"}]
            with open(path, "w") as f:
                json.dump({"pipeline": p}, f)
            aws("create-pipeline", "--cli-input-json", "file://" + path)

            _, got, _ = aws("get-pipeline", "--name", "cli-orig")
            self.assertIn("metadata", got)
            # What get-pipeline printed, as a new pipeline: only the name changes.
            clone = copy.deepcopy(got)
            del clone["metadata"]
            clone["pipeline"]["name"] = "cli-clone"
            with open(path, "w") as f:
                json.dump(clone, f)
            aws("create-pipeline", "--cli-input-json", "file://" + path)
            _, again, _ = aws("get-pipeline", "--name", "cli-clone")
            again["pipeline"]["name"] = "cli-orig"
            self.assertEqual(again["pipeline"], got["pipeline"])
            self.assertEqual(again["pipeline"]["pipelineType"], "V2")

    def test_list_tags_delete_and_errors(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "create.json")
            with open(path, "w") as f:
                json.dump({"pipeline": example_pipeline("cli-tags"), "tags": [{"key": "a", "value": "1"}]}, f)
            aws("create-pipeline", "--cli-input-json", "file://" + path)
        _, listed, _ = aws("list-pipelines")
        self.assertIn("cli-tags", [p["name"] for p in listed["pipelines"]])
        arn = "arn:aws:codepipeline:us-east-1:000000000000:cli-tags"
        aws("tag-resource", "--resource-arn", arn, "--tags", "key=b,value=2")
        _, tags, _ = aws("list-tags-for-resource", "--resource-arn", arn)
        self.assertEqual(tags["tags"], [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}])
        aws("untag-resource", "--resource-arn", arn, "--tag-keys", "a")
        _, tags, _ = aws("list-tags-for-resource", "--resource-arn", arn)
        self.assertEqual(tags["tags"], [{"key": "b", "value": "2"}])

        aws("delete-pipeline", "--name", "cli-tags")
        code, _, err = aws("get-pipeline", "--name", "cli-tags", check=False)
        self.assertNotEqual(code, 0)
        self.assertIn("PipelineNotFoundException", err)
        code, _, err = aws("get-pipeline", "--name", "has space", check=False)
        self.assertNotEqual(code, 0)
        self.assertIn("ValidationException", err)


class ApprovalFlowTest(unittest.TestCase):
    """A boto3 job worker completes the source; the aws CLI approves."""

    def wait(self, what, fn, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = fn()
            if got:
                return got
            time.sleep(0.05)
        self.fail("timed out waiting for " + what)

    def test_approve_with_the_cli(self):
        cp = client()
        source_type = {"category": "Source", "owner": "Custom", "provider": "CompatSource", "version": "1"}
        cp.create_custom_action_type(
            category="Source", provider="CompatSource", version="1",
            inputArtifactDetails={"minimumCount": 0, "maximumCount": 0},
            outputArtifactDetails={"minimumCount": 1, "maximumCount": 1},
        )
        p = example_pipeline("approval-flow")
        p["stages"][0]["actions"][0]["actionTypeId"] = source_type
        del p["stages"][0]["actions"][0]["configuration"]
        p["stages"] = p["stages"][:2]  # Source, Approve
        cp.create_pipeline(pipeline=p)  # starts an execution

        # The job worker, written with boto3 as workers for CodePipeline are.
        job = self.wait("a source job", lambda: (cp.poll_for_jobs(actionTypeId=source_type, maxBatchSize=1)["jobs"] or [None])[0])
        self.assertEqual(job["data"]["pipelineContext"]["stage"]["name"], "Source")
        ack = cp.acknowledge_job(jobId=job["id"], nonce=job["nonce"])
        self.assertEqual(ack["status"], "InProgress")
        cp.put_job_success_result(jobId=job["id"], currentRevision={"revision": "v1", "changeIdentifier": "v1"},
                                  executionDetails={"summary": "fetched", "percentComplete": 100})

        def pending_token():
            _, state, _ = aws("get-pipeline-state", "--name", "approval-flow")
            latest = state["stageStates"][1]["actionStates"][0].get("latestExecution", {})
            return latest.get("token") if latest.get("status") == "InProgress" else None

        token = self.wait("the approval token in get-pipeline-state", pending_token)
        _, out, _ = aws("put-approval-result", "--pipeline-name", "approval-flow", "--stage-name", "Approve",
                        "--action-name", "Gate", "--token", token, "--result", "summary=looks good,status=Approved")
        self.assertIn("approvedAt", out)
        code, _, err = aws("put-approval-result", "--pipeline-name", "approval-flow", "--stage-name", "Approve",
                           "--action-name", "Gate", "--token", token, "--result", "summary=again,status=Approved", check=False)
        self.assertNotEqual(code, 0)
        self.assertIn("ApprovalAlreadyCompletedException", err)

        _, listed, _ = aws("list-pipeline-executions", "--pipeline-name", "approval-flow")
        execution_id = listed["pipelineExecutionSummaries"][0]["pipelineExecutionId"]
        self.assertEqual(listed["pipelineExecutionSummaries"][0]["trigger"]["triggerType"], "CreatePipeline")

        def succeeded():
            _, ex, _ = aws("get-pipeline-execution", "--pipeline-name", "approval-flow", "--pipeline-execution-id", execution_id)
            return ex["pipelineExecution"]["status"] == "Succeeded"

        self.wait("the execution to succeed", succeeded)
        _, state, _ = aws("get-pipeline-state", "--name", "approval-flow")
        gate = state["stageStates"][1]["actionStates"][0]["latestExecution"]
        self.assertEqual(gate["status"], "Succeeded")
        self.assertEqual(gate["summary"], "looks good")
        self.assertEqual(gate["lastUpdatedBy"], "arn:aws:iam::000000000000:root")
        self.assertNotIn("token", gate)


if __name__ == "__main__":
    unittest.main(verbosity=2)
