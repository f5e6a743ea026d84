"""Job logs through the CloudWatch Logs API with the real boto3 client.

Run by internal/server/logsapi_test.go, which starts a server, gives one
pipeline two jobs with logs (appended through the runner's log service) and
passes through the environment: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, and
LOGS_GROUP, LOGS_STREAM_BIG (a finished log of LOGS_BIG_LINES lines
"line NNNNNN", then a line of LOGS_LONG bytes of "x", then "no newline"),
LOGS_STREAM_SMALL (a running log: "small one", "small two", "small three").
"""

import os
import sys
import time

import boto3
import botocore.exceptions

GROUP = os.environ["LOGS_GROUP"]
BIG = os.environ["LOGS_STREAM_BIG"]
SMALL = os.environ["LOGS_STREAM_SMALL"]
N = int(os.environ["LOGS_BIG_LINES"])
LONG = int(os.environ["LOGS_LONG"])
MAX_EVENT = 65536

logs = boto3.client("logs")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def error_code(fn, **kw):
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


def big_messages():
    """What the big stream's events must be."""
    out = ["line %06d" % i for i in range(N)]
    out += ["x" * MAX_EVENT, "x" * (LONG - MAX_EVENT)]
    out.append("no newline")
    return out


def test_describe():
    groups = logs.describe_log_groups(logGroupNamePrefix="/aws/codepipeline/")["logGroups"]
    mine = [g for g in groups if g["logGroupName"] == GROUP]
    check(len(mine) == 1, "describe_log_groups lists %s: %s" % (GROUP, groups))
    if mine:
        g = mine[0]
        check(g["arn"].endswith(":log-group:%s:*" % GROUP) and g["arn"].startswith("arn:aws:logs:us-east-1:"), "group arn %s" % g["arn"])
        check(g["logGroupArn"] == g["arn"][:-2], "logGroupArn %s" % g.get("logGroupArn"))
        check(g["creationTime"] > 0 and g["storedBytes"] > 0, "group times and bytes %s" % g)
        check(g.get("retentionInDays") == 30, "retentionInDays %s" % g.get("retentionInDays"))
    check(logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"] == [], "other prefix lists nothing")
    # The paginator walks groups one at a time.
    names = [g["logGroupName"] for p in logs.get_paginator("describe_log_groups").paginate(PaginationConfig={"PageSize": 1}) for g in p["logGroups"]]
    check(GROUP in names and len(names) == len(set(names)), "paged groups %s" % names)

    streams = logs.describe_log_streams(logGroupName=GROUP)["logStreams"]
    check(sorted(s["logStreamName"] for s in streams) == sorted([BIG, SMALL]), "streams %s" % streams)
    for s in streams:
        check(s["arn"].endswith(":log-group:%s:log-stream:%s" % (GROUP, s["logStreamName"])), "stream arn %s" % s["arn"])
        check(s["firstEventTimestamp"] <= s["lastEventTimestamp"] and s["creationTime"] > 0, "stream times %s" % s)
    one = logs.describe_log_streams(logGroupName=GROUP, limit=1)
    check(len(one["logStreams"]) == 1 and "nextToken" in one, "limit 1 gives a token")
    two = logs.describe_log_streams(logGroupName=GROUP, limit=1, nextToken=one["nextToken"])
    check(len(two["logStreams"]) == 1 and two["logStreams"][0]["logStreamName"] != one["logStreams"][0]["logStreamName"] and "nextToken" not in two, "second page %s" % two)
    by_time = logs.describe_log_streams(logGroupName=GROUP, orderBy="LastEventTime", descending=True)["logStreams"]
    check([s["logStreamName"] for s in by_time] == [SMALL, BIG], "ordered by last event, newest first: %s" % [s["logStreamName"] for s in by_time])
    pre = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=BIG[:8])["logStreams"]
    check(BIG in [s["logStreamName"] for s in pre], "prefix")


def test_get_log_events():
    want = big_messages()
    # Forward from the head, page by page, until the token comes back.
    got, token, pages = [], None, 0
    while True:
        kw = dict(logGroupName=GROUP, logStreamName=BIG, startFromHead=True)
        if token:
            kw["nextToken"] = token
        r = logs.get_log_events(**kw)
        pages += 1
        got += [e["message"] for e in r["events"]]
        for e in r["events"]:
            if e["timestamp"] <= 0 or e["ingestionTime"] < e["timestamp"]:
                check(False, "event times %s" % e)
                break
        if r["nextForwardToken"] == token:
            break
        token = r["nextForwardToken"]
        check(pages < 200, "forward paging ends")
        if pages >= 200:
            break
    check(got == want, "get_log_events forward: %d events, want %d" % (len(got), len(want)))
    check(pages >= N // 10000, "pages of at most 10000 events: %d pages" % pages)

    # The default reads backward from the end: the latest events first page.
    r = logs.get_log_events(logGroupName=GROUP, logStreamName=BIG, limit=5)
    check([e["message"] for e in r["events"]] == want[-5:], "latest 5: %s" % [e["message"][:20] for e in r["events"]])
    back = logs.get_log_events(logGroupName=GROUP, logStreamName=BIG, limit=5, nextToken=r["nextBackwardToken"])
    check([e["message"] for e in back["events"]] == want[-10:-5], "the 5 before: %s" % [e["message"][:20] for e in back["events"]])
    fwd = logs.get_log_events(logGroupName=GROUP, logStreamName=BIG, limit=3, nextToken=back["nextForwardToken"])
    check([e["message"] for e in fwd["events"]] == want[-5:-2], "forward again from a backward page")

    # The running stream: complete lines only, and more come as appended.
    r = logs.get_log_events(logGroupName=GROUP, logStreamName=SMALL, startFromHead=True)
    check([e["message"] for e in r["events"]] == ["small one", "small two", "small three"], "small stream %s" % r["events"])
    again = logs.get_log_events(logGroupName=GROUP, logStreamName=SMALL, nextToken=r["nextForwardToken"])
    check(again["events"] == [] and again["nextForwardToken"] == r["nextForwardToken"], "at the end the token comes back")


def test_filter_log_events():
    want = big_messages()
    # The paginator pages through the whole group: both streams, in time order.
    started = time.time()
    events, pages = [], 0
    for page in logs.get_paginator("filter_log_events").paginate(logGroupName=GROUP, interleaved=True):
        pages += 1
        events += page["events"]
    took = time.time() - started
    print("filter_log_events: %d events in %d pages, %.2fs" % (len(events), pages, took), flush=True)
    big = [e["message"] for e in events if e["logStreamName"] == BIG]
    small = [e["message"] for e in events if e["logStreamName"] == SMALL]
    check(big == want, "filter big stream: %d events, want %d" % (len(big), len(want)))
    check(small == ["small one", "small two", "small three"], "filter small stream %s" % small)
    keys = [(e["timestamp"], e["logStreamName"]) for e in events]
    check(keys == sorted(keys), "events interleaved in time order")
    check(len({e["eventId"] for e in events}) == len(events), "event ids unique")
    check(pages >= len(events) // 10000, "pages of at most 10000 events")

    # Limits, stream selection, patterns and time ranges.
    r = logs.filter_log_events(logGroupName=GROUP, limit=7, logStreamNames=[BIG])
    check([e["message"] for e in r["events"]] == want[:7] and "nextToken" in r, "limit 7")
    r2 = logs.filter_log_events(logGroupName=GROUP, limit=7, logStreamNames=[BIG], nextToken=r["nextToken"])
    check([e["message"] for e in r2["events"]] == want[7:14], "the next 7")
    r = logs.filter_log_events(logGroupName=GROUP, filterPattern='"line 050000"')
    check([e["message"] for e in r["events"]] == ["line 050000"], "quoted pattern %s" % [e["message"] for e in r["events"]][:3])
    r = logs.filter_log_events(logGroupName=GROUP, filterPattern="?three ?newline")
    check(sorted(e["message"] for e in r["events"]) == ["no newline", "small three"], "? terms %s" % r["events"])
    r = logs.filter_log_events(logGroupName=GROUP, filterPattern="small -two")
    check([e["message"] for e in r["events"]] == ["small one", "small three"], "- terms %s" % r["events"])
    r = logs.filter_log_events(logGroupName=GROUP, logStreamNamePrefix=SMALL)
    check(len(r["events"]) == 3, "stream prefix")
    last = events[-1]["timestamp"]
    r = logs.filter_log_events(logGroupName=GROUP, startTime=last + 1)
    check(r["events"] == [] and "nextToken" not in r, "nothing after the last event")
    r = logs.filter_log_events(logGroupName=GROUP, startTime=0, endTime=0)
    check(r["events"] == [], "nothing before 1970")


def test_errors():
    check(error_code(logs.describe_log_streams, logGroupName="/aws/codepipeline/nope") == ("ResourceNotFoundException", 400), "unknown group")
    check(error_code(logs.get_log_events, logGroupName=GROUP, logStreamName="nope") == ("ResourceNotFoundException", 400), "unknown stream")
    check(error_code(logs.filter_log_events, logGroupName="no-prefix") == ("ResourceNotFoundException", 400), "group outside /aws/codepipeline/")
    check(error_code(logs.get_log_events, logGroupName=GROUP, logStreamName=BIG, nextToken="f/bogus")[0] == "InvalidParameterException", "bad token")
    check(error_code(logs.filter_log_events, logGroupName=GROUP, nextToken="bogus")[0] == "InvalidParameterException", "bad filter token")
    check(error_code(logs.filter_log_events, logGroupName=GROUP, filterPattern="{ $.level = \"x\" }")[0] == "InvalidParameterException", "JSON pattern refused")
    check(error_code(logs.filter_log_events, logGroupName=GROUP, logGroupIdentifier=GROUP)[0] == "InvalidParameterException", "name and identifier")
    check(error_code(logs.put_log_events, logGroupName=GROUP, logStreamName=BIG, logEvents=[{"timestamp": 1, "message": "x"}]) == ("InvalidOperationException", 400), "writes refused")
    check(error_code(logs.delete_log_group, logGroupName=GROUP)[0] == "InvalidOperationException", "delete refused")
    bad = boto3.client("logs", aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"], aws_secret_access_key="wrong-secret-0000000000000000000000000000")
    check(error_code(bad.describe_log_groups)[0] == "InvalidSignatureException", "bad signature")
    # An identifier ARN names the group too.
    arn = logs.describe_log_groups(logGroupNamePrefix=GROUP)["logGroups"][0]["arn"]
    r = logs.filter_log_events(logGroupIdentifier=arn, logStreamNames=[SMALL])
    check(len(r["events"]) == 3, "group by ARN")


for fn in (test_describe, test_get_log_events, test_filter_log_events, test_errors):
    print("==", fn.__name__, flush=True)
    try:
        fn()
    except Exception as e:  # a client error where none was expected
        failures.append("%s: %r" % (fn.__name__, e))
        print("FAIL:", fn.__name__, repr(e), flush=True)

if failures:
    print("%d failures" % len(failures))
    sys.exit(1)
print("ok")
