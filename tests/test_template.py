"""The SAM template keeps the delivery guarantees the design relies on.

cfn-lint (run by scripts/test) checks that the template is valid; these
check what validity does not: timeouts against visibility, partial batch
responses, DLQs, TTL, least privilege on secrets.
"""

import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


class CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


CfnLoader.add_multi_constructor("!", _tag)

T = yaml.load((ROOT / "template.yaml").read_text(), Loader=CfnLoader)
R = T["Resources"]
GLOBAL_TIMEOUT = T["Globals"]["Function"]["Timeout"]


def functions():
    return {k: v for k, v in R.items() if v["Type"] == "AWS::Serverless::Function"}


def test_each_function_is_one_binary_of_the_shared_cargo_target_on_arm64():
    g = T["Globals"]["Function"]
    assert (g["Runtime"], g["Architectures"], g["CodeUri"]) == ("provided.al2023", ["arm64"], "./")
    binaries = {v["Metadata"]["BuildProperties"]["Binary"] for v in functions().values()}
    assert binaries == {"ingress", "executor", "dispatcher", "admin"}
    assert all(v["Metadata"]["BuildMethod"] == "rust-cargolambda" for v in functions().values())


def test_queue_visibility_is_at_least_six_times_the_consumer_timeout_and_has_a_dlq():
    for name, fn in functions().items():
        for event in fn["Properties"].get("Events", {}).values():
            if event["Type"] != "SQS":
                continue
            queue = event["Properties"]["Queue"]["GetAtt"].split(".")[0]
            timeout = fn["Properties"].get("Timeout", GLOBAL_TIMEOUT)
            q = R[queue]["Properties"]
            assert q["VisibilityTimeout"] >= 6 * timeout, (name, queue)
            assert q["MaximumMessageSize"] == 1048576  # SQS's largest (1 MiB); jobs are checked against it
            if queue.endswith("DLQ"):
                # Read back into dead deliveries; nothing after it: what
                # cannot be read stays, under the DLQ's alarm.
                assert "RedrivePolicy" not in q, queue
            else:
                assert q["RedrivePolicy"]["maxReceiveCount"] >= 1
            assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name
            assert "MaximumConcurrency" in event["Properties"]["ScalingConfig"], name


def test_the_retry_ladder_fits_the_queue_retention():
    # Default ladder: 15 attempts over 71h43m (retry.rs); each delay hop is
    # a new message, so one message never waits longer than 900 s, but the
    # queue must keep messages at least one hop and the DLQ must outlive
    # the ladder so an operator can redrive.
    for q in ("RunsQueue", "DeliveriesQueue"):
        assert R[q]["Properties"]["MessageRetentionPeriod"] >= 900
    for q in ("RunsDLQ", "DeliveriesDLQ"):
        assert R[q]["Properties"]["MessageRetentionPeriod"] >= 72 * 3600


def test_ordered_deliveries_have_a_fifo_queue_that_keeps_messages_through_their_retries():
    q, dlq = R["OrderedDeliveriesQueue"]["Properties"], R["OrderedDeliveriesDLQ"]["Properties"]
    assert q["FifoQueue"] is True and dlq["FifoQueue"] is True  # a FIFO queue's DLQ must be FIFO
    # High throughput: deduplication and limits per message group.
    assert (q["DeduplicationScope"], q["FifoThroughputLimit"]) == ("messageGroup", "perMessageGroupId")
    # A message stays through the Standard Webhooks ladder (about 3.2
    # days), and may wait behind the messages ahead of it in its group.
    assert q["MessageRetentionPeriod"] == 14 * 86400
    # Every attempt and every failing attempt ahead of it is a receive: the
    # limit is SQS's highest, and decides nothing but where a message that
    # never gets handled is read back from.
    assert q["RedrivePolicy"]["maxReceiveCount"] == 1000
    dispatcher_env = R["DispatcherFunction"]["Properties"]["Environment"]["Variables"]
    # The dispatcher ends an ordered delivery before the queue drops it:
    # it must know the queue's retention.
    assert dispatcher_env["HOOKFLOW_ORDERED_RETENTION"] == f"{q['MessageRetentionPeriod'] // 86400}d"
    # Both delivery DLQs are read back into dead deliveries.
    arns = dispatcher_env["HOOKFLOW_DEAD_LETTER_ARNS"]["Join"][1]
    assert arns == [{"GetAtt": "DeliveriesDLQ.Arn"}, {"GetAtt": "OrderedDeliveriesDLQ.Arn"}]
    sources = {e["Properties"]["Queue"]["GetAtt"] for e in R["DispatcherFunction"]["Properties"]["Events"].values()}
    assert {"DeliveriesDLQ.Arn", "OrderedDeliveriesDLQ.Arn"} <= sources
    assert T["Globals"]["Function"]["Environment"]["Variables"]["HOOKFLOW_ORDERED_QUEUE_URL"] == {
        "Ref": "OrderedDeliveriesQueue"}
    dispatcher = R["DispatcherFunction"]["Properties"]
    ordered = dispatcher["Events"]["OrderedDeliveries"]["Properties"]
    assert ordered["Queue"] == {"GetAtt": "OrderedDeliveriesQueue.Arn"}
    assert "MaximumBatchingWindowInSeconds" not in ordered  # not for FIFO sources
    # The dispatcher keeps held messages invisible (ChangeMessageVisibility
    # is in SQSPollerPolicy); the admin function and the dispatcher publish.
    assert {"SQSPollerPolicy": {"QueueName": {"GetAtt": "OrderedDeliveriesQueue.QueueName"}}} in dispatcher["Policies"]
    for fn in ("AdminFunction", "DispatcherFunction"):
        assert {"SQSSendMessagePolicy": {"QueueName": {"GetAtt": "OrderedDeliveriesQueue.QueueName"}}} in R[fn][
            "Properties"]["Policies"], fn


def test_table_has_ttl_and_point_in_time_recovery():
    p = R["Table"]["Properties"]
    assert p["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_secrets_access_is_limited_to_the_prefix_and_to_functions_that_resolve_secrets():
    readers = set()
    for name, fn in functions().items():
        for policy in fn["Properties"]["Policies"]:
            for st in policy.get("Statement", []) if isinstance(policy, dict) else []:
                if "secretsmanager:GetSecretValue" in str(st["Action"]):
                    readers.add(name)
                    assert "${SecretsPrefix}" in st["Resource"]["Sub"] and st["Resource"]["Sub"].endswith("*")
                if "secretsmanager:PutSecretValue" in str(st["Action"]):
                    # Only the admin function writes, and only subscriptions' keys.
                    assert name == "AdminFunction"
                    assert st["Resource"]["Sub"].endswith(":secret:${SecretsPrefix}subscriptions/*")
    assert readers == {"IngressFunction", "DispatcherFunction", "AdminFunction"}


def test_the_admin_api_is_iam_authorised():
    assert R["HttpApi"]["Properties"]["Auth"]["EnableIamAuthorizer"] is True
    admin = R["AdminFunction"]["Properties"]["Events"]["Admin"]["Properties"]
    assert (admin["Path"], admin["Auth"]["Authorizer"]) == ("/v1/{proxy+}", "AWS_IAM")
    hooks = R["IngressFunction"]["Properties"]["Events"]["Hooks"]["Properties"]
    assert "Auth" not in hooks, "partners call triggers without AWS credentials"


def test_logs_are_json_with_retention_and_alarms_watch_the_dlqs():
    assert T["Globals"]["Function"]["LoggingConfig"]["LogFormat"] == "JSON"
    groups = [v for v in R.values() if v["Type"] == "AWS::Logs::LogGroup"]
    assert len(groups) == 5 and all(g["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"} for g in groups)
    alarmed = {
        v["Properties"]["Dimensions"][0]["Value"]["GetAtt"]
        for v in R.values()
        if v["Type"] == "AWS::CloudWatch::Alarm" and "Dimensions" in v["Properties"]
    }
    assert alarmed == {"RunsDLQ.QueueName", "DeliveriesDLQ.QueueName", "OrderedDeliveriesDLQ.QueueName"}
    assert "ApiUrl" in T["Outputs"] and "TableName" in T["Outputs"]


def test_every_alarm_tells_the_topic_when_it_fires_and_when_it_clears():
    alarms = {k: v for k, v in R.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    assert len(alarms) == 4
    for name, alarm in alarms.items():
        p = alarm["Properties"]
        assert p["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert p["OKActions"] == [{"Ref": "AlarmTopic"}], name
    assert R["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    sub = R["AlertEmailSubscription"]
    assert sub["Condition"] == "HasAlertEmail", "no subscription without an address"
    assert sub["Properties"] == {"TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email", "Endpoint": {"Ref": "AlertEmail"}}
    assert T["Parameters"]["AlertEmail"]["Default"] == ""
    assert T["Outputs"]["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}


def test_api_access_logs_are_json_lines_kept_for_the_retention():
    import json

    settings = R["HttpApi"]["Properties"]["AccessLogSettings"]
    assert settings["DestinationArn"] == {"GetAtt": "ApiAccessLogs.Arn"}
    assert R["ApiAccessLogs"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    # A line as API Gateway writes it: the format with its variables filled.
    line = settings["Format"]
    for var in set(part.split('"')[0] for part in line.split("$context.")[1:]):
        line = line.replace("$context." + var, "x")
    record = json.loads(line)
    assert {"requestId", "ip", "status", "routeKey", "latencyMs", "error"} <= set(record)


def test_aws_destinations_are_only_the_operators_and_none_by_default():
    """The senders may reach exactly the AllowedDestinationArns (empty by
    default: no policy at all), and every function reads the same list."""
    p = T["Parameters"]["AllowedDestinationArns"]
    assert (p["Type"], p["Default"]) == ("CommaDelimitedList", "")
    assert T["Conditions"]["HasDestinations"] == {"Not": [{"Equals": [{"Join": ["", {"Ref": "AllowedDestinationArns"}]}, ""]}]}
    policy = R["DestinationsPolicy"]
    assert policy["Condition"] == "HasDestinations"
    roles = {r["Ref"] for r in policy["Properties"]["Roles"]}
    assert roles == {"DispatcherFunctionRole", "IngressFunctionRole"}
    [st] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert sorted(st["Action"]) == ["events:PutEvents", "sns:Publish", "sqs:SendMessage"]
    assert st["Resource"] == {"Ref": "AllowedDestinationArns"}
    env = T["Globals"]["Function"]["Environment"]["Variables"]
    assert env["HOOKFLOW_DESTINATIONS"] == {"Join": [",", {"Ref": "AllowedDestinationArns"}]}
    # No function's own policies reach a destination.
    for name, fn in functions().items():
        for pol in fn["Properties"]["Policies"]:
            assert "sns:Publish" not in str(pol) and "events:PutEvents" not in str(pol), name
