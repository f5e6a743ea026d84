// End to end with the real AWS SDK for JavaScript v3: a custom-action job
// worker as one is written for CodePipeline in Node.js.
//
// Run by the Go test internal/server/compat_javascript_test.go (not compat_js_test.go: Go builds *_js_test.go for GOOS=js only), which starts a server
// and passes its endpoint and credentials through the environment the README
// gives: AWS_ENDPOINT_URL, AWS_SHARED_CREDENTIALS_FILE (the file pipelined
// generated), AWS_REGION. The clients are configured from the environment
// only, as an unmodified worker's would be; the job's S3 client is made from
// the job's artifactCredentials, path-style, with the SDK's default settings
// (so PutObject sends a CRC32 flexible checksum, and aws-chunked with a
// trailing checksum for a streamed body).
//
// One pipeline, Source -> Build -> Deploy: Source and Deploy are the built-in
// S3 actions on buckets of the embedded store created here with the root
// credentials; Build is a custom action (a secret property, a queryable one)
// run by the worker below. The first execution succeeds, the second is failed
// by the worker; and the SDK's error deserializer maps the server's errors
// to its modeled exception classes.
//
//   node --test-reporter=spec compat/js/test_job_worker.mjs

import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { test } from "node:test";

import {
  AcknowledgeJobCommand,
  CodePipelineClient,
  CreateCustomActionTypeCommand,
  CreatePipelineCommand,
  GetJobDetailsCommand,
  GetPipelineCommand,
  GetPipelineExecutionCommand,
  GetPipelineStateCommand,
  InvalidJobStateException,
  InvalidNonceException,
  JobNotFoundException,
  ListActionExecutionsCommand,
  ListPipelineExecutionsCommand,
  PipelineNotFoundException,
  PollForJobsCommand,
  PutJobFailureResultCommand,
  PutJobSuccessResultCommand,
  StartPipelineExecutionCommand,
  ValidationException,
} from "@aws-sdk/client-codepipeline";
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";

import { crc32Base64, makeZip, readZip } from "./zip.mjs";

const ROLE = "arn:aws:iam::000000000000:role/pipelined";
const PIPELINE = "js-worker-e2e";
const ARTIFACT_BUCKET = "js-e2e-artifacts";
const SOURCE_BUCKET = "js-e2e-source";
const SOURCE_KEY = "drops/app.zip";
const DEPLOY_BUCKET = "js-e2e-site";
const BUILD_TYPE = { category: "Build", owner: "Custom", provider: "JSBuilder", version: "1" };
const QUEUE = "js-workers";
const SECRET = "js-secret-token-9f8e7d6c5b4a";
const FAILURE_MESSAGE = "js worker: 3 of 10 tests failed";

const INDEX_HTML = "<html><body><p>marker: hello from pipelined</p></body></html>\n";
const MAIN_JS = "console.log('main');\n";

const ENDPOINT = process.env.AWS_ENDPOINT_URL;
const TIMEOUT_MS = 30_000;

// Clients configured from the environment alone (endpoint, region,
// credentials file), as a worker that was pointed at pipelined by changing
// only the endpoint.
const cp = new CodePipelineClient({});
const rootS3 = new S3Client({ forcePathStyle: true });

/** The S3 client a worker makes from a job's artifactCredentials. */
function jobS3(creds) {
  const s3 = new S3Client({
    endpoint: ENDPOINT,
    forcePathStyle: true,
    credentials: {
      accessKeyId: creds.accessKeyId,
      secretAccessKey: creds.secretAccessKey,
      sessionToken: creds.sessionToken,
    },
  });
  // Record what went on the wire (after signing), to assert that the
  // defaults really were flexible checksums and aws-chunked.
  s3.sent = [];
  s3.middlewareStack.add(
    (next) => async (args) => {
      s3.sent.push({ ...args.request.headers });
      return next(args);
    },
    { step: "deserialize", name: "recordSentHeaders" },
  );
  return s3;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function stateSummary() {
  try {
    const st = await cp.send(new GetPipelineStateCommand({ name: PIPELINE }));
    return JSON.stringify(st.stageStates.map((s) => [s.stageName, (s.actionStates ?? []).map((a) =>
      [a.actionName, a.latestExecution?.status, a.latestExecution?.errorDetails?.message])]));
  } catch (e) {
    return `(GetPipelineState failed: ${e.name}: ${e.message})`;
  }
}

/** Calls fn until it returns something truthy, or fails at the deadline. */
async function waitFor(what, fn, timeoutMs = TIMEOUT_MS, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const got = await fn();
    if (got) return got;
    await sleep(intervalMs);
  }
  assert.fail(`timed out after ${timeoutMs}ms waiting for ${what}; pipeline state: ${await stateSummary()}`);
}

/** Asserts that promise rejects with an error named name (an S3 error code or a modeled exception). */
async function assertRejectsNamed(promise, name, what, cls) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `${what}: expected ${name}, but the call succeeded`);
  assert.equal(err.name, name, `${what}: expected ${name}, got ${err.name}: ${err.message}`);
  if (cls) assert.ok(err instanceof cls, `${what}: the SDK did not deserialize it to its ${cls.name} class`);
  assert.ok(err.$metadata?.httpStatusCode >= 400, `${what}: HTTP status ${err.$metadata?.httpStatusCode}`);
  return err;
}

async function bodyBytes(out) {
  return Buffer.from(await out.Body.transformToByteArray());
}

/** Polls (with the queryable property) until a Build job of executionId is handed out. */
async function pollBuildJob(executionId) {
  return waitFor(`a Build job of execution ${executionId}`, async () => {
    const out = await cp.send(new PollForJobsCommand({
      actionTypeId: BUILD_TYPE, maxBatchSize: 1, queryParam: { Queue: QUEUE },
    }));
    const job = out.jobs?.[0];
    if (job) {
      assert.equal(job.data.pipelineContext.pipelineExecutionId, executionId, "the job is for the expected execution");
    }
    return job;
  });
}

async function waitForExecution(executionId) {
  return waitFor(`execution ${executionId} to finish`, async () => {
    const { pipelineExecution: x } = await cp.send(new GetPipelineExecutionCommand({
      pipelineName: PIPELINE, pipelineExecutionId: executionId,
    }));
    return ["InProgress", "Stopping"].includes(x.status) ? null : x;
  });
}

async function buildActionExecution(executionId) {
  const out = await cp.send(new ListActionExecutionsCommand({
    pipelineName: PIPELINE, filter: { pipelineExecutionId: executionId },
  }));
  const builds = out.actionExecutionDetails.filter((d) => d.stageName === "Build" && d.actionName === "Compile");
  assert.equal(builds.length, 1, `one Build action execution in ${JSON.stringify(out.actionExecutionDetails)}`);
  return builds[0];
}

const state = {}; // what the success path leaves for the failure path

test("setup: buckets, source object, custom action type, pipeline", async () => {
  assert.ok(ENDPOINT, "AWS_ENDPOINT_URL must point at the server");
  assert.ok(process.env.AWS_REGION, "AWS_REGION must be set (the JS SDK does not read AWS_DEFAULT_REGION)");

  for (const b of [SOURCE_BUCKET, DEPLOY_BUCKET]) {
    await rootS3.send(new CreateBucketCommand({ Bucket: b }));
  }
  state.sourceZip = makeZip({ "index.html": INDEX_HTML, "app/main.js": MAIN_JS });
  await rootS3.send(new PutObjectCommand({ Bucket: SOURCE_BUCKET, Key: SOURCE_KEY, Body: state.sourceZip }));
  const head = await rootS3.send(new HeadObjectCommand({ Bucket: SOURCE_BUCKET, Key: SOURCE_KEY }));
  assert.equal(head.ContentLength, state.sourceZip.length);

  const created = await cp.send(new CreateCustomActionTypeCommand({
    category: "Build", provider: BUILD_TYPE.provider, version: "1",
    configurationProperties: [
      { name: "Queue", required: true, key: true, secret: false, queryable: true, type: "String",
        description: "which workers take the job" },
      { name: "ApiToken", required: true, key: false, secret: true, queryable: false, type: "String" },
    ],
    inputArtifactDetails: { minimumCount: 1, maximumCount: 1 },
    outputArtifactDetails: { minimumCount: 1, maximumCount: 1 },
    settings: { entityUrlTemplate: "https://ci.example.com/queues/{Config:Queue}" },
  }));
  assert.deepEqual(created.actionType.id, BUILD_TYPE);
  assert.deepEqual(created.actionType.actionConfigurationProperties.map((p) => [p.name, p.secret, p.queryable]),
    [["Queue", false, true], ["ApiToken", true, false]]);

  const out = await cp.send(new CreatePipelineCommand({
    pipeline: {
      name: PIPELINE,
      roleArn: ROLE,
      artifactStore: { type: "S3", location: ARTIFACT_BUCKET },
      stages: [
        { name: "Source", actions: [{
          name: "Fetch",
          actionTypeId: { category: "Source", owner: "AWS", provider: "S3", version: "1" },
          configuration: { S3Bucket: SOURCE_BUCKET, S3ObjectKey: SOURCE_KEY, PollForSourceChanges: "false" },
          outputArtifacts: [{ name: "SourceOut" }],
        }] },
        { name: "Build", actions: [{
          name: "Compile",
          actionTypeId: BUILD_TYPE,
          configuration: { Queue: QUEUE, ApiToken: SECRET },
          inputArtifacts: [{ name: "SourceOut" }],
          outputArtifacts: [{ name: "Built" }],
        }] },
        { name: "Deploy", actions: [{
          name: "ToSite",
          actionTypeId: { category: "Deploy", owner: "AWS", provider: "S3", version: "1" },
          configuration: { BucketName: DEPLOY_BUCKET, Extract: "true" },
          inputArtifacts: [{ name: "Built" }],
        }] },
      ],
    },
  })); // starts an execution
  const buildConfig = out.pipeline.stages[1].actions[0].configuration;
  assert.deepEqual(buildConfig, { Queue: QUEUE, ApiToken: "****" }, "CreatePipeline masks the secret");
});

test("job worker: poll, acknowledge, artifacts with job credentials, success", async () => {
  assert.ok(state.sourceZip, "setup ran");
  const listed = await waitFor("the first execution", async () => {
    const out = await cp.send(new ListPipelineExecutionsCommand({ pipelineName: PIPELINE }));
    return out.pipelineExecutionSummaries.length ? out.pipelineExecutionSummaries : null;
  });
  assert.equal(listed.length, 1);
  assert.equal(listed[0].trigger.triggerType, "CreatePipeline");
  const executionId = listed[0].pipelineExecutionId;

  // The queryable property routes jobs: a worker of another queue gets none.
  const other = await cp.send(new PollForJobsCommand({
    actionTypeId: BUILD_TYPE, maxBatchSize: 1, queryParam: { Queue: "other-workers" },
  }));
  assert.deepEqual(other.jobs, [], "a poll for another queue gets no job");

  const job = await pollBuildJob(executionId);
  assert.match(job.nonce, /\S/);
  const ack = await cp.send(new AcknowledgeJobCommand({ jobId: job.id, nonce: job.nonce }));
  assert.equal(ack.status, "InProgress");

  const data = job.data;
  assert.deepEqual(data.actionTypeId, BUILD_TYPE);
  const ctx = data.pipelineContext;
  assert.equal(ctx.pipelineName, PIPELINE);
  assert.deepEqual([ctx.stage.name, ctx.action.name], ["Build", "Compile"]);
  // Secret configuration values reach the worker in clear, in the job data.
  assert.deepEqual(data.actionConfiguration.configuration, { Queue: QUEUE, ApiToken: SECRET });
  assert.deepEqual(data.inputArtifacts.map((a) => a.name), ["SourceOut"]);
  assert.deepEqual(data.outputArtifacts.map((a) => a.name), ["Built"]);
  const inLoc = data.inputArtifacts[0].location;
  const outLoc = data.outputArtifacts[0].location;
  assert.deepEqual([inLoc.type, outLoc.type], ["S3", "S3"]);
  const src = inLoc.s3Location;
  const dst = outLoc.s3Location;
  assert.deepEqual([src.bucketName, dst.bucketName], [ARTIFACT_BUCKET, ARTIFACT_BUCKET]);
  assert.notEqual(src.objectKey, dst.objectKey);
  const creds = data.artifactCredentials;
  for (const k of ["accessKeyId", "secretAccessKey", "sessionToken"]) {
    assert.equal(typeof creds[k], "string", `artifactCredentials.${k}`);
    assert.ok(creds[k].length > 0, `artifactCredentials.${k}`);
  }

  // GetJobDetails gives the same job data (and credentials) again.
  const details = await cp.send(new GetJobDetailsCommand({ jobId: job.id }));
  assert.equal(details.jobDetails.id, job.id);
  assert.deepEqual(details.jobDetails.data.actionConfiguration.configuration, { Queue: QUEUE, ApiToken: SECRET });
  assert.ok(details.jobDetails.data.artifactCredentials?.sessionToken, "GetJobDetails carries credentials");

  const s3 = jobS3(creds);
  const input = await bodyBytes(await s3.send(new GetObjectCommand({ Bucket: src.bucketName, Key: src.objectKey })));
  assert.ok(input.equals(state.sourceZip), "the Source action's artifact is the source object as is");
  const files = readZip(input);
  assert.deepEqual(files, { "index.html": INDEX_HTML, "app/main.js": MAIN_JS });

  // Scoped: only this job's input (read) and output (write).
  await assertRejectsNamed(s3.send(new GetObjectCommand({ Bucket: SOURCE_BUCKET, Key: SOURCE_KEY })),
    "AccessDenied", "job credentials reading the source bucket");
  await assertRejectsNamed(s3.send(new PutObjectCommand({ Bucket: DEPLOY_BUCKET, Key: "index.html", Body: "x" })),
    "AccessDenied", "job credentials writing the deploy bucket");
  await assertRejectsNamed(s3.send(new PutObjectCommand({ Bucket: ARTIFACT_BUCKET, Key: src.objectKey, Body: "x" })),
    "AccessDenied", "job credentials overwriting their input");
  await assertRejectsNamed(s3.send(new PutObjectCommand({ Bucket: ARTIFACT_BUCKET, Key: `${dst.objectKey}-other`, Body: "x" })),
    "AccessDenied", "job credentials writing another key of the artifact bucket");

  // The output artifact, written with the SDK's default settings.
  files["index.html"] = files["index.html"].replace("marker: hello", "MARKER: HELLO");
  files.BUILD_INFO = `built by the JS SDK worker, queue=${data.actionConfiguration.configuration.Queue}, execution=${ctx.pipelineExecutionId}\n`;
  const outZip = makeZip(files);
  const wantCRC = crc32Base64(outZip);

  // 1. A Buffer body: a CRC32 flexible checksum in a header.
  s3.sent.length = 0;
  const put1 = await s3.send(new PutObjectCommand({ Bucket: dst.bucketName, Key: dst.objectKey, Body: outZip }));
  const h1 = s3.sent.at(-1);
  assert.equal(h1["x-amz-checksum-crc32"], wantCRC, `the SDK sent a CRC32 checksum header: ${JSON.stringify(h1)}`);
  assert.match(put1.ETag, /^"[0-9a-f]{32}"$/);
  assert.equal(put1.ChecksumCRC32, wantCRC, "PutObject answers the checksum it verified");

  // 2. A streamed body: aws-chunked, the CRC32 in a trailer.
  s3.sent.length = 0;
  const put2 = await s3.send(new PutObjectCommand({
    Bucket: dst.bucketName, Key: dst.objectKey, ContentLength: outZip.length,
    Body: Readable.from([outZip.subarray(0, 100), outZip.subarray(100)]),
  }));
  const h2 = s3.sent.at(-1);
  assert.match(h2["content-encoding"] ?? "", /aws-chunked/, `the SDK streamed aws-chunked: ${JSON.stringify(h2)}`);
  assert.equal(h2["x-amz-trailer"], "x-amz-checksum-crc32", "with a trailing CRC32");
  assert.equal(Number(h2["x-amz-decoded-content-length"]), outZip.length);
  assert.equal(put2.ETag, put1.ETag, "the object stored from the aws-chunked body is the decoded body");
  assert.equal(put2.ChecksumCRC32, wantCRC, "PutObject answers the checksum of the trailer it verified");

  await assertRejectsNamed(s3.send(new GetObjectCommand({ Bucket: dst.bucketName, Key: dst.objectKey })),
    "AccessDenied", "job credentials reading their output (write only)");

  // What was stored, read back by the root with checksum validation on.
  const stored = await rootS3.send(new GetObjectCommand({ Bucket: dst.bucketName, Key: dst.objectKey, ChecksumMode: "ENABLED" }));
  assert.equal(stored.ChecksumCRC32, wantCRC, "the stored object keeps the CRC32 the SDK sent");
  assert.ok((await bodyBytes(stored)).equals(outZip), "the stored output is the zip the worker wrote");

  await cp.send(new PutJobSuccessResultCommand({
    jobId: job.id,
    currentRevision: { revision: "build-1", changeIdentifier: "build-1" },
    executionDetails: { summary: "built by the JS worker", externalExecutionId: "js-run-1", percentComplete: 100 },
    outputVariables: { BuildFlavor: "release", Worker: "aws-sdk-js-v3" },
  }));
  // A finished job's credentials stop working.
  await assertRejectsNamed(s3.send(new GetObjectCommand({ Bucket: src.bucketName, Key: src.objectKey })),
    "AccessDenied", "job credentials after the job succeeded");

  const x = await waitForExecution(executionId);
  assert.equal(x.status, "Succeeded", `execution status; pipeline state: ${await stateSummary()}`);
  assert.ok(x.artifactRevisions.some((r) => r.name === "SourceOut"), JSON.stringify(x.artifactRevisions));

  const build = await buildActionExecution(executionId);
  assert.equal(build.status, "Succeeded");
  assert.deepEqual(build.output.outputVariables, { BuildFlavor: "release", Worker: "aws-sdk-js-v3" });
  assert.equal(build.output.executionResult.externalExecutionSummary, "built by the JS worker");
  assert.equal(build.output.executionResult.externalExecutionId, "js-run-1");
  assert.deepEqual(build.input.configuration, { Queue: QUEUE, ApiToken: "****" }, "ListActionExecutions masks the secret");
  assert.deepEqual(build.input.actionTypeId, BUILD_TYPE);

  // Deployed: the worker's output, unzipped by the built-in deploy.
  for (const [key, want] of Object.entries(files)) {
    const got = await rootS3.send(new GetObjectCommand({ Bucket: DEPLOY_BUCKET, Key: key }));
    assert.equal((await bodyBytes(got)).toString("utf8"), want, `deployed ${key}`);
  }

  // The secret never comes back from the API outside the job data.
  const got = await cp.send(new GetPipelineCommand({ name: PIPELINE }));
  assert.deepEqual(got.pipeline.stages[1].actions[0].configuration, { Queue: QUEUE, ApiToken: "****" });
  for (const [what, v] of [["GetPipeline", got], ["ListActionExecutions", build],
    ["GetPipelineState", await cp.send(new GetPipelineStateCommand({ name: PIPELINE }))]]) {
    assert.ok(!JSON.stringify(v).includes(SECRET), `${what} must not show the secret value`);
  }
  state.executionId = executionId;
});

test("job worker: failure result fails the execution", async () => {
  assert.ok(state.executionId, "the success path ran");
  const { pipelineExecutionId: executionId } = await cp.send(new StartPipelineExecutionCommand({ name: PIPELINE }));
  assert.notEqual(executionId, state.executionId);

  const job = await pollBuildJob(executionId);
  // AcknowledgeJob with another nonce: the modeled InvalidNonceException.
  await assertRejectsNamed(cp.send(new AcknowledgeJobCommand({ jobId: job.id, nonce: `${job.nonce}-wrong` })),
    "InvalidNonceException", "AcknowledgeJob with a wrong nonce", InvalidNonceException);
  const ack = await cp.send(new AcknowledgeJobCommand({ jobId: job.id, nonce: job.nonce }));
  assert.equal(ack.status, "InProgress");

  // Before failing, the worker uploads a (partial) output of more than one
  // part, as a large artifact is written: a multipart upload with the job
  // credentials, each part with the SDK's default CRC32 checksum.
  const dst = job.data.outputArtifacts[0].location.s3Location;
  const s3 = jobS3(job.data.artifactCredentials);
  const big = Buffer.alloc(5 * 1024 * 1024 + 1000);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
  const parts = [big.subarray(0, 5 * 1024 * 1024), big.subarray(5 * 1024 * 1024)];
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: dst.bucketName, Key: dst.objectKey }));
  assert.ok(UploadId, "CreateMultipartUpload gives an upload id");
  const done = [];
  for (const [i, body] of parts.entries()) {
    s3.sent.length = 0;
    const up = await s3.send(new UploadPartCommand({
      Bucket: dst.bucketName, Key: dst.objectKey, UploadId, PartNumber: i + 1, Body: body,
    }));
    assert.equal(s3.sent.at(-1)["x-amz-checksum-crc32"], crc32Base64(body), `part ${i + 1} sent with a CRC32 checksum`);
    assert.match(up.ETag, /^"[0-9a-f]{32}"$/);
    done.push({ ETag: up.ETag, PartNumber: i + 1 });
  }
  const completed = await s3.send(new CompleteMultipartUploadCommand({
    Bucket: dst.bucketName, Key: dst.objectKey, UploadId, MultipartUpload: { Parts: done },
  }));
  assert.match(completed.ETag, /^"[0-9a-f]{32}-2"$/);
  const stored = await rootS3.send(new GetObjectCommand({ Bucket: dst.bucketName, Key: dst.objectKey }));
  assert.ok((await bodyBytes(stored)).equals(big), "the multipart output is the parts joined");

  await cp.send(new PutJobFailureResultCommand({
    jobId: job.id,
    failureDetails: { type: "JobFailed", message: FAILURE_MESSAGE, externalExecutionId: "js-run-2" },
  }));
  // A result for a job that is over: InvalidJobStateException.
  await assertRejectsNamed(cp.send(new PutJobSuccessResultCommand({ jobId: job.id })),
    "InvalidJobStateException", "PutJobSuccessResult after the failure", InvalidJobStateException);

  const x = await waitForExecution(executionId);
  assert.equal(x.status, "Failed", `execution status; pipeline state: ${await stateSummary()}`);

  const build = await buildActionExecution(executionId);
  assert.equal(build.status, "Failed");
  assert.equal(build.output.executionResult.errorDetails?.message, FAILURE_MESSAGE,
    `the failure message in ListActionExecutions: ${JSON.stringify(build.output)}`);
  assert.equal(build.output.executionResult.errorDetails?.code, "JobFailed");

  const st = await cp.send(new GetPipelineStateCommand({ name: PIPELINE }));
  const buildStage = st.stageStates.find((s) => s.stageName === "Build");
  assert.equal(buildStage.latestExecution.status, "Failed");
  assert.equal(buildStage.actionStates[0].latestExecution.errorDetails?.message, FAILURE_MESSAGE);
  const deployStage = st.stageStates.find((s) => s.stageName === "Deploy");
  assert.equal(deployStage.latestExecution?.pipelineExecutionId, state.executionId,
    "Deploy did not run for the failed execution");
});

test("errors: the server's __type through the SDK's deserializer", async () => {
  const e = await assertRejectsNamed(cp.send(new GetPipelineCommand({ name: "no-such-pipeline" })),
    "PipelineNotFoundException", "GetPipeline of a missing pipeline", PipelineNotFoundException);
  assert.equal(e.$metadata.httpStatusCode, 400);
  assert.match(e.message, /no-such-pipeline/);
  assert.ok(e.$metadata.requestId, "x-amzn-RequestId is read into $metadata.requestId");

  await assertRejectsNamed(cp.send(new AcknowledgeJobCommand({ jobId: "00000000-0000-4000-8000-000000000000", nonce: "1" })),
    "JobNotFoundException", "AcknowledgeJob of an unknown job", JobNotFoundException);
  await assertRejectsNamed(cp.send(new GetPipelineCommand({ name: "not a valid name" })),
    "ValidationException", "GetPipeline with an invalid name", ValidationException);
});
