#!/usr/bin/env python3
"""Validates app-server messages against upstream's JSON Schema.

    validate.py SCHEMA_DIR < messages.jsonl

Each input line is {"for": "<request method>"|null, "message": {...}} as the
server sent it: responses are checked against the method's response schema,
notifications and server requests against their method's branch. Prints one
line per violation; exits 1 if there is any.
"""
import json
import os
import sys

from jsonschema import Draft7Validator


def main():
    schema_dir = sys.argv[1]
    v2 = json.load(open(os.path.join(schema_dir, "codex_app_server_protocol.v2.schemas.json")))
    defs = v2["definitions"]
    requests = json.load(open(os.path.join(schema_dir, "ClientRequest.json")))
    notifications = json.load(open(os.path.join(schema_dir, "ServerNotification.json")))
    server_requests = json.load(open(os.path.join(schema_dir, "ServerRequest.json")))
    defs = {**requests.get("definitions", {}), **defs}

    response_of = {}
    for branch in requests["oneOf"]:
        method = branch["properties"]["method"]["enum"][0]
        ref = branch["properties"].get("params", {}).get("$ref", "")
        name = ref.rsplit("/", 1)[-1]
        if name.endswith("Params"):
            response_of[method] = name[:-6] + "Response"
    response_of["thread/name/set"] = "ThreadSetNameResponse"
    # Methods without params have no `*Params` to derive the name from.
    response_of["account/logout"] = "LogoutAccountResponse"
    response_of["configRequirements/read"] = "ConfigRequirementsReadResponse"
    response_of["account/rateLimits/read"] = "GetAccountRateLimitsResponse"
    # Both config writes answer a `ConfigWriteResponse`.
    response_of["config/batchWrite"] = "ConfigWriteResponse"
    response_of["config/value/write"] = "ConfigWriteResponse"

    def branch_for(doc, method):
        for b in doc["oneOf"]:
            if b["properties"]["method"]["enum"][0] == method:
                return {**b, "definitions": {**doc.get("definitions", {}), **defs}}
        return None

    failures = 0
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        rec = json.loads(line)
        msg = rec["message"]
        if "method" in msg and "id" in msg:
            schema = branch_for(server_requests, msg["method"])
            instance = msg
        elif "method" in msg:
            schema = branch_for(notifications, msg["method"])
            instance = {k: v for k, v in msg.items()}
        elif "result" in msg:
            name = response_of.get(rec.get("for") or "")
            if rec.get("for") == "initialize" and name not in defs:
                v1 = os.path.join(schema_dir, "v1", "InitializeResponse.json")
                if os.path.exists(v1):
                    schema = json.load(open(v1))
                else:
                    # The experimental schema has it in the combined file only.
                    combined = json.load(open(os.path.join(schema_dir, "codex_app_server_protocol.schemas.json")))
                    schema = {"$ref": "#/definitions/InitializeResponse", "definitions": combined["definitions"]}
            else:
                schema = {"$ref": "#/definitions/" + name, "definitions": defs} if name in defs else None
            instance = msg["result"]
        else:
            continue
        if schema is None:
            print(f"line {n}: no schema for {rec.get('for') or msg.get('method')}")
            failures += 1
            continue
        errors = list(Draft7Validator(schema).iter_errors(instance))
        for e in errors:
            print(f"line {n} ({rec.get('for') or msg.get('method')}): {e.message[:300]} at {list(e.absolute_path)}")
        failures += len(errors)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
