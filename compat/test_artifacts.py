"""End to end with the real boto3 client and aws CLI: artifacts and job workers.

Run by the Go test internal/server/compat_test.go, which starts a server and
passes its endpoint and credentials through the environment:
AWS_ENDPOINT_URL, AWS_SHARED_CREDENTIALS_FILE (the file pipelined generated),
AWS_DEFAULT_REGION.

One pipeline, Source → Build → Partner → Approve → Deploy:

- Source and Deploy are the built-in S3 actions, on buckets of the embedded
  S3 store created here with boto3's S3 client and the root credentials;
- Build is a custom action run by a boto3 job worker: it polls,
  acknowledges, downloads its input artifact with the job's
  artifactCredentials through boto3's S3 client, uploads a transformed
  output and reports success;
- Partner is a third-party action (registered through the admin API, with a
  client issued there) run by a boto3 partner worker through
  GetThirdPartyJobDetails and its client token;
- Approve is a manual approval the aws CLI reads the token of and approves.

Both workers sign with a worker key of their action type (issued through the
admin API), not the root credentials, and are refused anything else.

The deployed files must be the source transformed by both workers.
"""

import io
import json
import os
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request
import zipfile

import boto3
import botocore.exceptions
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config

ROLE = "arn:aws:iam::000000000000:role/pipelined"
PIPELINE = "artifacts-e2e"
ARTIFACT_BUCKET = "e2e-artifacts"
SOURCE_BUCKET = "e2e-source"
SOURCE_KEY = "drops/app.zip"
DEPLOY_BUCKET = "e2e-site"

BUILD_TYPE = {"category": "Build", "owner": "Custom", "provider": "E2EBuilder", "version": "1"}
PARTNER_TYPE = {"category": "Test", "owner": "ThirdParty", "provider": "E2EPartner", "version": "1"}

INDEX_HTML = "<html><body><p>marker: hello from pipelined</p></body></html>\n"
MAIN_JS = "console.log('main');\n"

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "")
REGION = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
NO_RETRIES = {"max_attempts": 1}
PATH_STYLE = Config(s3={"addressing_style": "path"}, retries=NO_RETRIES)


def codepipeline():
    return boto3.client("codepipeline", endpoint_url=ENDPOINT, region_name=REGION, config=Config(retries=NO_RETRIES))


def root_s3():
    return boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION, config=PATH_STYLE)


def job_s3(creds):
    """The S3 client a worker makes from a job's artifactCredentials."""
    return boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION, config=PATH_STYLE,
                        aws_access_key_id=creds["accessKeyId"],
                        aws_secret_access_key=creds["secretAccessKey"],
                        aws_session_token=creds["sessionToken"])


def make_zip(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in sorted(files.items()):
            z.writestr(name, content)
    return buf.getvalue()


def read_zip(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n).decode() for n in z.namelist() if not n.endswith("/")}


def error_code(exc):
    return exc.response.get("Error", {}).get("Code")


def admin(method, path, body=None):
    """Calls the admin API, signed with SigV4 for service "pipelined" and the
    root credentials of the session (the shared credentials file)."""
    url = ENDPOINT.rstrip("/") + "/admin/v1/" + path
    data = json.dumps(body).encode() if body is not None else b""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    req = AWSRequest(method=method, url=url, data=data, headers=headers)
    creds = boto3.Session().get_credentials().get_frozen_credentials()
    SigV4Auth(creds, "pipelined", REGION).add_auth(req)
    prepared = req.prepare()
    http_req = urllib.request.Request(prepared.url, data=data if body is not None else None,
                                      headers=dict(prepared.headers.items()), method=method)
    try:
        with urllib.request.urlopen(http_req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def worker_codepipeline(action_type):
    """A CodePipeline client signed with a worker key issued (through the
    admin API, as root) for action_type: what a worker host is given instead
    of the root credentials. It may call only that type's job protocol."""
    status, body = admin("POST", "worker-keys", {"actionTypeId": action_type, "description": "compat worker"})
    if status != 201:
        raise AssertionError("create a worker key for %s: %s %s" % (action_type, status, body))
    key = body["workerKey"]
    assert key["actionTypeId"] == action_type and key["status"] == "Active", key
    return boto3.client("codepipeline", endpoint_url=ENDPOINT, region_name=REGION, config=Config(retries=NO_RETRIES),
                        aws_access_key_id=key["accessKeyId"], aws_secret_access_key=body["secretAccessKey"])


def aws(*args, check=True):
    """Runs the aws CLI (codepipeline) and returns (exit code, parsed stdout or None, stderr)."""
    cmd = ["aws", "codepipeline", *args, "--output", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(cmd), proc.returncode, proc.stderr))
    out = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, out, proc.stderr


def pipeline_declaration():
    return {
        "name": PIPELINE,
        "roleArn": ROLE,
        "artifactStore": {"type": "S3", "location": ARTIFACT_BUCKET},
        "stages": [
            {"name": "Source", "actions": [{
                "name": "Fetch",
                "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"S3Bucket": SOURCE_BUCKET, "S3ObjectKey": SOURCE_KEY, "PollForSourceChanges": "false"},
                "outputArtifacts": [{"name": "SourceOut"}],
            }]},
            {"name": "Build", "actions": [{
                "name": "Compile",
                "actionTypeId": BUILD_TYPE,
                "configuration": {"Flavor": "release"},
                "inputArtifacts": [{"name": "SourceOut"}],
                "outputArtifacts": [{"name": "Built"}],
            }]},
            {"name": "Partner", "actions": [{
                "name": "Check",
                "actionTypeId": PARTNER_TYPE,
                "configuration": {"Level": "strict", "ApiKey": "partner-secret-value"},
                "inputArtifacts": [{"name": "Built"}],
                "outputArtifacts": [{"name": "Checked"}],
            }]},
            {"name": "Approve", "actions": [{
                "name": "Gate",
                "actionTypeId": {"category": "Approval", "owner": "AWS", "provider": "Manual", "version": "1"},
                "configuration": {"CustomData": "deploy the checked build?"},
            }]},
            {"name": "Deploy", "actions": [{
                "name": "ToSite",
                "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"BucketName": DEPLOY_BUCKET, "Extract": "true"},
                "inputArtifacts": [{"name": "Checked"}],
            }]},
        ],
    }


class ArtifactsEndToEndTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.assertTrue(ENDPOINT, "AWS_ENDPOINT_URL must point at the server")
        self.cp = codepipeline()
        self.s3 = root_s3()
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name

    def state_summary(self, pipeline=PIPELINE):
        state = self.cp.get_pipeline_state(name=pipeline)
        return [(s["stageName"], [(a["actionName"], a.get("latestExecution", {}).get("status"),
                                   a.get("latestExecution", {}).get("errorDetails"))
                                  for a in s.get("actionStates", [])]) for s in state["stageStates"]]

    def wait(self, what, fn, timeout=30, interval=0.05, pipeline=PIPELINE, allow_failed=False):
        """Calls fn until it returns something true; fails at the deadline,
        or at once when the pipeline's execution failed (unless allowed)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = fn()
            if got:
                return got
            if not allow_failed:
                execs = self.cp.list_pipeline_executions(pipelineName=pipeline)["pipelineExecutionSummaries"]
                if execs and execs[0]["status"] in ("Failed", "Stopped", "Cancelled"):
                    self.fail("waiting for %s: the execution ended %s; pipeline state: %s"
                              % (what, execs[0]["status"], self.state_summary(pipeline)))
            time.sleep(interval)
        self.fail("timed out after %ss waiting for %s; pipeline state: %s" % (timeout, what, self.state_summary(pipeline)))

    def assertS3Error(self, code, fn, what):
        with self.assertRaises(botocore.exceptions.ClientError, msg=what) as ctx:
            fn()
        self.assertEqual(error_code(ctx.exception), code, "%s: %s" % (what, ctx.exception))

    def path(self, name):
        return os.path.join(self.tmp, name)

    # --- setup through the APIs -------------------------------------------

    def create_buckets_and_source(self):
        s3 = self.s3
        s3.create_bucket(Bucket=SOURCE_BUCKET)
        s3.create_bucket(Bucket=DEPLOY_BUCKET)
        self.source_zip = make_zip({"index.html": INDEX_HTML, "app/main.js": MAIN_JS})
        s3.put_object(Bucket=SOURCE_BUCKET, Key=SOURCE_KEY, Body=self.source_zip)
        head = s3.head_object(Bucket=SOURCE_BUCKET, Key=SOURCE_KEY)
        self.assertEqual(head["ContentLength"], len(self.source_zip))

    def register_action_types(self):
        out = self.cp.create_custom_action_type(
            category="Build", provider=BUILD_TYPE["provider"], version="1",
            configurationProperties=[{"name": "Flavor", "required": True, "key": True, "secret": False,
                                      "queryable": False, "type": "String"}],
            inputArtifactDetails={"minimumCount": 1, "maximumCount": 1},
            outputArtifactDetails={"minimumCount": 1, "maximumCount": 1},
        )
        self.assertEqual(out["actionType"]["id"], BUILD_TYPE)

        status, body = admin("POST", "third-party-action-types", {
            "category": PARTNER_TYPE["category"], "provider": PARTNER_TYPE["provider"], "version": "1",
            "configurationProperties": [
                {"name": "Level", "required": True, "key": True, "secret": False, "queryable": False, "type": "String"},
                {"name": "ApiKey", "required": True, "key": False, "secret": True, "queryable": False, "type": "String"},
            ],
            "inputArtifactDetails": {"minimumCount": 1, "maximumCount": 1},
            "outputArtifactDetails": {"minimumCount": 1, "maximumCount": 1},
            "jobTimeoutInMinutes": 10,
        })
        self.assertIn(status, (200, 201), "register the third-party action type: %s %s" % (status, body))
        self.assertEqual(body["actionType"]["id"], PARTNER_TYPE)
        self.assertEqual(body["jobTimeoutInMinutes"], 10)

        # The admin API wants the "pipelined" signature, not another service's.
        url = ENDPOINT.rstrip("/") + "/admin/v1/clients"
        req = AWSRequest(method="GET", url=url)
        SigV4Auth(boto3.Session().get_credentials().get_frozen_credentials(), "codepipeline", REGION).add_auth(req)
        prepared = req.prepare()
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            urllib.request.urlopen(urllib.request.Request(url, headers=dict(prepared.headers.items())), timeout=30)
        self.assertEqual(ctx.exception.code, 403)

    def issue_client(self):
        status, body = admin("POST", "clients", {"pipelineName": PIPELINE, "stageName": "Partner", "actionName": "Check"})
        self.assertEqual(status, 201, "issue a client: %s" % (body,))
        self.assertTrue(body["clientId"] and body["clientToken"], body)
        self.assertEqual(body["actionTypeId"], PARTNER_TYPE)
        status, listed = admin("GET", "clients?pipelineName=" + PIPELINE)
        self.assertEqual(status, 200, listed)
        self.assertEqual([(c["clientId"], c["status"]) for c in listed["clients"]], [(body["clientId"], "Active")])
        self.assertNotIn("clientToken", listed["clients"][0])
        return body["clientId"], body["clientToken"]

    # --- the workers --------------------------------------------------------

    def run_build_worker(self):
        """A custom job worker, as one is written with boto3, signing with a
        worker key of its action type."""
        cp = worker_codepipeline(BUILD_TYPE)
        for what, call in (("ListPipelines", lambda: cp.list_pipelines()),
                           ("a poll for another type", lambda: cp.poll_for_third_party_jobs(actionTypeId=PARTNER_TYPE, maxBatchSize=1)),
                           ("DeletePipeline", lambda: cp.delete_pipeline(name=PIPELINE))):
            with self.assertRaises(botocore.exceptions.ClientError, msg=what) as refused:
                call()
            self.assertEqual(error_code(refused.exception), "AccessDeniedException", what)
        job = self.wait("a Build job", lambda: (cp.poll_for_jobs(actionTypeId=BUILD_TYPE, maxBatchSize=1)["jobs"] or [None])[0])
        ack = cp.acknowledge_job(jobId=job["id"], nonce=job["nonce"])
        self.assertEqual(ack["status"], "InProgress")

        data = job["data"]
        ctx = data["pipelineContext"]
        self.assertEqual(ctx["pipelineName"], PIPELINE)
        self.assertEqual((ctx["stage"]["name"], ctx["action"]["name"]), ("Build", "Compile"))
        self.assertTrue(ctx.get("pipelineExecutionId"), ctx)
        self.assertEqual(data["actionConfiguration"]["configuration"], {"Flavor": "release"})
        self.assertEqual([a["name"] for a in data["inputArtifacts"]], ["SourceOut"])
        self.assertEqual([a["name"] for a in data["outputArtifacts"]], ["Built"])
        src = data["inputArtifacts"][0]["location"]
        out = data["outputArtifacts"][0]["location"]
        self.assertEqual((src["type"], out["type"]), ("S3", "S3"))
        src, out = src["s3Location"], out["s3Location"]
        self.assertEqual((src["bucketName"], out["bucketName"]), (ARTIFACT_BUCKET, ARTIFACT_BUCKET))
        self.assertNotEqual(src["objectKey"], out["objectKey"])

        creds = data["artifactCredentials"]
        s3 = job_s3(creds)
        in_path = self.path("build-in.zip")
        s3.download_file(src["bucketName"], src["objectKey"], in_path)
        with open(in_path, "rb") as f:
            self.assertEqual(f.read(), self.source_zip, "the Source action's artifact is the source object as is")

        # Scoped: only this job's input (read) and output (write).
        self.assertS3Error("AccessDenied", lambda: s3.get_object(Bucket=SOURCE_BUCKET, Key=SOURCE_KEY),
                           "job credentials reading the source bucket")
        self.assertS3Error("AccessDenied", lambda: s3.put_object(Bucket=DEPLOY_BUCKET, Key="index.html", Body=b"x"),
                           "job credentials writing the deploy bucket")
        self.assertS3Error("AccessDenied", lambda: s3.put_object(Bucket=ARTIFACT_BUCKET, Key=src["objectKey"], Body=b"x"),
                           "job credentials overwriting their input")
        self.assertS3Error("AccessDenied", lambda: s3.put_object(Bucket=ARTIFACT_BUCKET, Key=out["objectKey"] + "-other", Body=b"x"),
                           "job credentials writing another key of the artifact bucket")
        self.assertS3Error("AccessDenied", lambda: s3.list_objects_v2(Bucket=ARTIFACT_BUCKET),
                           "job credentials listing the artifact bucket")
        self.assertS3Error("AccessDenied", lambda: s3.delete_object(Bucket=ARTIFACT_BUCKET, Key=src["objectKey"]),
                           "job credentials deleting their input")

        files = read_zip(in_path)
        self.assertEqual(files, {"index.html": INDEX_HTML, "app/main.js": MAIN_JS})
        files["index.html"] = files["index.html"].replace("marker: hello", "MARKER: HELLO")
        files["BUILD_INFO"] = "built by boto3 worker, flavor=%s, execution=%s\n" % (
            data["actionConfiguration"]["configuration"]["Flavor"], ctx["pipelineExecutionId"])
        out_path = self.path("build-out.zip")
        with open(out_path, "wb") as f:
            f.write(make_zip(files))
        s3.upload_file(out_path, out["bucketName"], out["objectKey"])
        self.assertS3Error("AccessDenied", lambda: s3.get_object(Bucket=out["bucketName"], Key=out["objectKey"]),
                           "job credentials reading their output (write only)")

        cp.put_job_success_result(jobId=job["id"], currentRevision={"revision": "build-1", "changeIdentifier": "build-1"},
                                  executionDetails={"summary": "built", "percentComplete": 100},
                                  outputVariables={"BuildFlavor": "release"})
        # A finished job's credentials stop working.
        self.assertS3Error("AccessDenied", lambda: s3.get_object(Bucket=src["bucketName"], Key=src["objectKey"]),
                           "job credentials after the job succeeded")
        return ctx["pipelineExecutionId"], files["BUILD_INFO"]

    def run_partner_worker(self, client_id, client_token):
        """A third-party (partner) worker: the job data comes from
        GetThirdPartyJobDetails with the client token, signing with a worker
        key of its action type."""
        cp = worker_codepipeline(PARTNER_TYPE)
        polled = self.wait("a Partner job",
                           lambda: cp.poll_for_third_party_jobs(actionTypeId=PARTNER_TYPE, maxBatchSize=1)["jobs"])
        self.assertEqual(len(polled), 1)
        self.assertEqual(polled[0]["clientId"], client_id)
        job_id = polled[0]["jobId"]

        with self.assertRaises(cp.exceptions.InvalidClientTokenException):
            cp.get_third_party_job_details(jobId=job_id, clientToken="not-the-token-" + client_token[:8])

        details = cp.get_third_party_job_details(jobId=job_id, clientToken=client_token)["jobDetails"]
        self.assertEqual(details["id"], job_id)
        data = details["data"]
        ctx = data["pipelineContext"]
        self.assertNotIn("pipelineArn", ctx)
        self.assertNotIn("pipelineExecutionId", ctx)
        self.assertEqual(ctx["pipelineName"], PIPELINE)
        self.assertEqual((ctx["stage"]["name"], ctx["action"]["name"]), ("Partner", "Check"))
        self.assertEqual(data["actionTypeId"], PARTNER_TYPE)
        # Secret configuration values reach the partner in clear.
        self.assertEqual(data["actionConfiguration"]["configuration"], {"Level": "strict", "ApiKey": "partner-secret-value"})

        with self.assertRaises(cp.exceptions.InvalidClientTokenException):
            cp.acknowledge_third_party_job(jobId=job_id, nonce=details["nonce"], clientToken="wrong-token")
        ack = cp.acknowledge_third_party_job(jobId=job_id, nonce=details["nonce"], clientToken=client_token)
        self.assertEqual(ack["status"], "InProgress")

        src = data["inputArtifacts"][0]["location"]["s3Location"]
        out = data["outputArtifacts"][0]["location"]["s3Location"]
        self.assertEqual([a["name"] for a in data["inputArtifacts"]], ["Built"])
        self.assertEqual([a["name"] for a in data["outputArtifacts"]], ["Checked"])
        s3 = job_s3(data["artifactCredentials"])
        in_path = self.path("partner-in.zip")
        s3.download_file(src["bucketName"], src["objectKey"], in_path)
        self.assertS3Error("AccessDenied", lambda: s3.get_object(Bucket=SOURCE_BUCKET, Key=SOURCE_KEY),
                           "partner credentials reading the source bucket")
        files = read_zip(in_path)
        self.assertIn("BUILD_INFO", files, "the partner gets the Build action's output")
        files["CHECKED"] = "level=%s files=%s\n" % (data["actionConfiguration"]["configuration"]["Level"],
                                                    ",".join(sorted(files)))
        out_path = self.path("partner-out.zip")
        with open(out_path, "wb") as f:
            f.write(make_zip(files))
        s3.upload_file(out_path, out["bucketName"], out["objectKey"])

        with self.assertRaises(cp.exceptions.InvalidClientTokenException):
            cp.put_third_party_job_success_result(jobId=job_id, clientToken="wrong-token")
        cp.put_third_party_job_success_result(jobId=job_id, clientToken=client_token,
                                              currentRevision={"revision": "check-1", "changeIdentifier": "check-1"},
                                              executionDetails={"summary": "checked by partner", "percentComplete": 100})
        return files["CHECKED"]

    def approve_with_the_cli(self):
        cp = self.cp

        def approval_pending():
            for s in cp.get_pipeline_state(name=PIPELINE)["stageStates"]:
                if s["stageName"] == "Approve":
                    latest = s["actionStates"][0].get("latestExecution", {})
                    return latest.get("status") == "InProgress" and latest.get("token")
            return None

        self.wait("the approval to be pending", approval_pending)
        _, state, _ = aws("get-pipeline-state", "--name", PIPELINE)
        gate = [s for s in state["stageStates"] if s["stageName"] == "Approve"][0]["actionStates"][0]["latestExecution"]
        self.assertEqual(gate["status"], "InProgress")
        token = gate["token"]
        _, out, _ = aws("put-approval-result", "--pipeline-name", PIPELINE, "--stage-name", "Approve",
                        "--action-name", "Gate", "--token", token,
                        "--result", "summary=checked build looks good,status=Approved")
        self.assertIn("approvedAt", out)

    # --- the tests ------------------------------------------------------------

    def test_builtin_source_creates_the_artifact_bucket(self):
        """README: "the artifact bucket is created for you". A pipeline whose
        first action is the built-in S3 source, on an artifact bucket that
        does not exist yet in the embedded store, must run."""
        cp, s3 = self.cp, self.s3
        s3.create_bucket(Bucket="fresh-source")
        s3.create_bucket(Bucket="fresh-site")
        s3.put_object(Bucket="fresh-source", Key="app.zip", Body=make_zip({"index.html": INDEX_HTML}))
        p = {
            "name": "fresh-artifacts", "roleArn": ROLE,
            "artifactStore": {"type": "S3", "location": "fresh-artifact-bucket"},
            "stages": [
                {"name": "Source", "actions": [{
                    "name": "Fetch",
                    "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                    "configuration": {"S3Bucket": "fresh-source", "S3ObjectKey": "app.zip", "PollForSourceChanges": "false"},
                    "outputArtifacts": [{"name": "App"}],
                }]},
                {"name": "Deploy", "actions": [{
                    "name": "Site",
                    "actionTypeId": {"category": "Deploy", "owner": "AWS", "provider": "S3", "version": "1"},
                    "configuration": {"BucketName": "fresh-site", "Extract": "true"},
                    "inputArtifacts": [{"name": "App"}],
                }]},
            ],
        }
        cp.create_pipeline(pipeline=p)

        def finished():
            execs = cp.list_pipeline_executions(pipelineName="fresh-artifacts")["pipelineExecutionSummaries"]
            return execs and execs[0]["status"] not in ("InProgress", "Stopping") and execs[0]["status"]

        status = self.wait("the execution to finish", finished, pipeline="fresh-artifacts", allow_failed=True)
        self.assertEqual(status, "Succeeded", self.state_summary("fresh-artifacts"))
        self.assertEqual(s3.get_object(Bucket="fresh-site", Key="index.html")["Body"].read().decode(), INDEX_HTML)

    def test_workers_approval_and_deploy(self):
        started = time.time()
        cp = self.cp
        self.create_buckets_and_source()
        self.register_action_types()
        cp.create_pipeline(pipeline=pipeline_declaration())  # starts an execution
        client_id, client_token = self.issue_client()

        execution_id, build_info = self.run_build_worker()
        listed = cp.list_pipeline_executions(pipelineName=PIPELINE)["pipelineExecutionSummaries"]
        self.assertEqual([(e["pipelineExecutionId"], e["trigger"]["triggerType"]) for e in listed],
                         [(execution_id, "CreatePipeline")])

        checked = self.run_partner_worker(client_id, client_token)
        self.approve_with_the_cli()

        def finished():
            ex = cp.get_pipeline_execution(pipelineName=PIPELINE, pipelineExecutionId=execution_id)["pipelineExecution"]
            return ex["status"] if ex["status"] not in ("InProgress", "Stopping") else None

        status = self.wait("the execution to finish", finished, timeout=60)
        self.assertEqual(status, "Succeeded")
        _, ex, _ = aws("get-pipeline-execution", "--pipeline-name", PIPELINE, "--pipeline-execution-id", execution_id)
        self.assertEqual(ex["pipelineExecution"]["status"], "Succeeded")
        revisions = {r["name"]: r["revisionId"] for r in ex["pipelineExecution"]["artifactRevisions"]}
        self.assertIn("SourceOut", revisions)

        state = cp.get_pipeline_state(name=PIPELINE)
        summaries = {s["stageName"]: (s["latestExecution"]["status"],
                                      s["actionStates"][0]["latestExecution"].get("summary"))
                     for s in state["stageStates"]}
        self.assertEqual({k: v[0] for k, v in summaries.items()},
                         {k: "Succeeded" for k in ("Source", "Build", "Partner", "Approve", "Deploy")})
        self.assertEqual(summaries["Build"][1], "built")
        self.assertEqual(summaries["Partner"][1], "checked by partner")
        self.assertEqual(summaries["Approve"][1], "checked build looks good")

        # What was deployed: the source, transformed by both workers.
        want = {
            "index.html": INDEX_HTML.replace("marker: hello", "MARKER: HELLO"),
            "app/main.js": MAIN_JS,
            "BUILD_INFO": build_info,
            "CHECKED": checked,
        }
        self.assertEqual(checked, "level=strict files=BUILD_INFO,app/main.js,index.html\n")
        keys = sorted(o["Key"] for o in self.s3.list_objects_v2(Bucket=DEPLOY_BUCKET).get("Contents", []))
        self.assertEqual(keys, sorted(want))
        got = {}
        for key in keys:
            local = self.path("deployed-" + key.replace("/", "_"))
            self.s3.download_file(DEPLOY_BUCKET, key, local)
            with open(local) as f:
                got[key] = f.read()
        self.assertEqual(got, want)
        self.assertIn("MARKER: HELLO", got["index.html"])
        self.assertTrue(got["BUILD_INFO"].endswith("execution=%s\n" % execution_id))
        head = self.s3.head_object(Bucket=DEPLOY_BUCKET, Key="index.html")
        self.assertEqual(head["ContentType"], "text/html; charset=utf-8")

        print("end to end in %.1fs" % (time.time() - started))


if __name__ == "__main__":
    unittest.main(verbosity=2)
