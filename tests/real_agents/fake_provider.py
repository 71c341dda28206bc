#!/usr/bin/env python3
"""Fake model-provider APIs on loopback, for driving the real agent CLIs offline.

Python 3 standard library only. One process serves all four wire formats the
agents speak, told apart by path:

  POST /v1/messages                       Anthropic Messages   (claude)
  POST /v1/responses, /responses          OpenAI Responses     (codex, opencode's openai provider)
  POST /v1/chat/completions, /chat/completions
                                          OpenAI Chat Completions (aider, opencode's openai-compatible)
  POST /v1beta/models/M:generateContent   Gemini               (gemini)
  POST /v1beta/models/M:streamGenerateContent
  POST /v1beta/models/M:countTokens
  GET  .../models                         a one-model catalogue
  HEAD/GET anything else                  200 with an empty JSON object

Usage:
  fake_provider.py --script SCRIPT.json --record REQUESTS.jsonl --port-file PORT

It binds 127.0.0.1 on a free port, writes the port to --port-file (atomically)
and prints "fake-provider listening on 127.0.0.1:PORT".

The script (JSON) says what the "model" answers:

  {"error": {"status": 400, "message": "M"}}
      every model call fails with that HTTP status and message, in the
      provider's own error shape.

  {"limit": {"count": 1, "reset": EPOCH, "kind": K, "retry_after": S}, "turns": [...]}
      the first `count` model calls that declare tools (`"any": true`: any
      model call, for aider) and hold at least `after` (default 0) tool
      results (a limit met mid-conversation) are answered 429 in the provider's own shape,
      then "turns". Anthropic (x-should-retry: false): with `reset`, as a
      subscriber past its usage limit sees it (anthropic-ratelimit-unified-
      status: rejected, -reset: EPOCH); without, as an API key past its rate
      limit. OpenAI: kind "rate" (rate_limit_exceeded, retry-after S),
      "quota" (insufficient_quota), "usage" (Codex's usage_limit_reached
      with resets_at EPOCH). Gemini: RESOURCE_EXHAUSTED, kind "rate" (per
      minute, RetryInfo retryDelay S) or "quota" (per day).

  {"turns": [{"write": {"path": "hello.txt", "content": "hi\\n"}},
             {"shell": "touch done.txt"},
             {"text": "done"}],
   "plain": "done"}
      a conversation. The reply to a request is turns[n], n = how many tool
      results the request's conversation already holds (so the reply depends
      only on the request: retries and side requests do not shift it). A
      `write` or `shell` turn becomes a call of the matching tool among the
      tools the request declares (Write/write_file/write/..., Bash/shell/...),
      with argument names taken from that tool's schema. Past the last turn,
      or for a request that declares no tools (titles, summaries, aider's
      whole-file edits), the answer is the text `plain` (default "done").

  A turn {"call": {"name": N, "args": {...}}} calls tool N (an MCP tool,
  e.g. mcp__delegate__run) in a conversation that declares it; one that
  does not gets `plain`. {"echo_last_tool_result": true, "text": PREFIX}
  answers PREFIX followed by the text of the conversation's last tool
  result (Anthropic Messages).

  "hang_first": N (with "turns") leaves the first N requests that declare
      tools unanswered (the connection stays open, nothing is sent): a
      turn whose API never answers. They are recorded with "hung": true.
      Every API does this. Aider declares no tools: with "hang_any": true
      the first N model requests hang whatever they declare.

Usage: every answer reports its tokens in the provider's own shape, the
same figures everywhere (USAGE below): Anthropic `usage` {input_tokens 10,
output_tokens 5, cache_read_input_tokens 3, cache_creation_input_tokens 2};
OpenAI Responses `usage` {input_tokens 13 (3 of them
input_tokens_details.cached_tokens), output_tokens 5}; Chat Completions
`usage` {prompt_tokens 13 (prompt_tokens_details.cached_tokens 3),
completion_tokens 5}, streamed as a last chunk when the request asks
(`stream_options.include_usage`); Gemini `usageMetadata`
{promptTokenCount 13, cachedContentTokenCount 3, candidatesTokenCount 5}.
So an agent's count of one answered request is 10 input (not cached), 5
output and 3 cache-read tokens, (Anthropic only) 2 cache-creation tokens.

Every request is appended to --record as one JSON line: method, path, query,
headers (credentials masked), the parsed body, the API it was taken for, and
"user_texts": every text the user role sent, so a test can check that a
prompt arrived verbatim.
"""

import argparse
import itertools
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTER = itertools.count(1)
# The tokens every answer reports (see the docstring). OpenAI and Gemini
# count cached tokens inside the input; Anthropic apart from it.
USAGE = {"input": 10, "output": 5, "cache_read": 3, "cache_creation": 2}
OPENAI_INPUT = USAGE["input"] + USAGE["cache_read"]
RECORD_LOCK = threading.Lock()

# Tool names the CLIs use, in order of preference for each action.
WRITE_TOOLS = ["Write", "write_file", "write", "create_file"]
SHELL_TOOLS = ["Bash", "run_shell_command", "shell", "bash", "exec_command", "local_shell"]
PATH_KEYS = ["file_path", "filePath", "path", "absolute_path"]


def new_id(prefix):
    return f"{prefix}_{next(COUNTER):06d}{int(time.time() * 1000) % 100000:05d}"


# ---------------------------------------------------------------- the script


class Script:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        self.error = data.get("error")
        self.limit = data.get("limit")
        self.hang_left = int(data.get("hang_first", 0))
        self.hang_any = bool(data.get("hang_any", False))
        self.hang_lock = threading.Lock()
        self.turns = data.get("turns", [])
        self.plain = data.get("plain", "done")

    def hangs(self, tools):
        """Whether this request is one of the first `hang_first` with tools
        (or, with `hang_any`, of the first model requests)."""
        if not tools and not self.hang_any:
            return False
        with self.hang_lock:
            if self.hang_left <= 0:
                return False
            self.hang_left -= 1
            return True

    def reply(self, tools, tool_results, last_result=None):
        """What to answer: ("text", str) or ("call", name, args);
        `last_result` is the text of the conversation's last tool result."""
        if not tools:
            return ("text", self.plain)
        if tool_results >= len(self.turns):
            return ("text", self.plain)
        turn = self.turns[tool_results]
        if turn.get("echo_last_tool_result"):  # {"echo_last_tool_result": true, "text": PREFIX}
            return ("text", turn.get("text", "") + (last_result or ""))
        if "text" in turn:
            return ("text", turn["text"])
        if "write" in turn:
            call = write_call(tools, turn["write"])
            if call:
                return call
            return shell_call(tools, write_command(turn["write"]))
        if "shell" in turn:
            return shell_call(tools, turn["shell"])
        if "call" in turn:  # an explicit tool call: {"call": {"name": N, "args": {...}}}
            # Only a conversation that declares the tool is asked to call it
            # (an MCP orchestrator); another on the same API (its worker)
            # gets `plain`.
            if turn["call"]["name"] not in [t["name"] for t in tools]:
                return ("text", self.plain)
            return ("call", turn["call"]["name"], turn["call"].get("args", {}))
        return ("text", self.plain)


def write_command(write):
    content = write["content"].replace("'", "'\\''")
    path = write["path"].replace("'", "'\\''")
    return f"printf '%s' '{content}' > '{path}'"


def pick(tools, names):
    by_name = {t["name"]: t for t in tools}
    for name in names:
        if name in by_name:
            return by_name[name]
    return None


def write_call(tools, write):
    tool = pick(tools, WRITE_TOOLS)
    if not tool:
        return None
    props = tool.get("properties", {})
    path_key = next((k for k in PATH_KEYS if k in props), "file_path")
    # Claude Code's Write wants an absolute path: scripts give one.
    args = {path_key: write["path"], "content": write["content"]}
    return ("call", tool["name"], args)


def shell_call(tools, command):
    tool = pick(tools, SHELL_TOOLS)
    if not tool:
        return ("text", f"(no shell tool among {[t['name'] for t in tools]})")
    props = tool.get("properties", {})
    if tool.get("custom"):
        return ("call", tool["name"], command)
    key = "cmd" if "cmd" in props and "command" not in props else "command"
    if props.get(key, {}).get("type") == "array":
        args = {key: ["bash", "-lc", command]}
    else:
        args = {key: command}
    if "description" in props:
        args["description"] = "run a command"
    return ("call", tool["name"], args)


# ------------------------------------------------------- reading the requests


def anthropic_view(body):
    tools = [
        {"name": t.get("name"), "properties": (t.get("input_schema") or {}).get("properties", {})}
        for t in body.get("tools", []) or []
        if t.get("name")
    ]
    results, texts = 0, []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            if message.get("role") == "user":
                texts.append(content)
            continue
        for block in content or []:
            if block.get("type") == "tool_result":
                results += 1
            elif block.get("type") == "text" and message.get("role") == "user":
                texts.append(block.get("text", ""))
    return tools, results, texts


def anthropic_last_tool_result(body):
    """The text of the last tool_result block of an Anthropic conversation."""
    last = None
    for message in body.get("messages", []):
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "tool_result":
                inner = block.get("content")
                if isinstance(inner, str):
                    last = inner
                else:
                    last = "".join(b.get("text", "") for b in inner or [] if b.get("type") == "text")
    return last


def responses_view(body):
    tools = []
    for t in body.get("tools", []) or []:
        if t.get("type") == "function":
            tools.append({"name": t.get("name"), "properties": (t.get("parameters") or {}).get("properties", {})})
        elif t.get("type") == "custom":
            tools.append({"name": t.get("name"), "properties": {}, "custom": True})
        elif t.get("type") == "local_shell":
            tools.append({"name": "local_shell", "properties": {"command": {"type": "array"}}})
    results, texts = 0, []
    items = body.get("input", [])
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items:
        kind = item.get("type", "message")
        if kind.endswith("_call_output"):
            results += 1
        elif kind == "message" and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                texts.append(content)
            else:
                texts.extend(c.get("text", "") for c in content or [] if "text" in c)
    return tools, results, texts


def chat_view(body):
    tools = [
        {
            "name": t.get("function", {}).get("name"),
            "properties": (t.get("function", {}).get("parameters") or {}).get("properties", {}),
        }
        for t in body.get("tools", []) or []
    ]
    results, texts = 0, []
    for message in body.get("messages", []):
        if message.get("role") == "tool":
            results += 1
        elif message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
            else:
                texts.extend(c.get("text", "") for c in content or [] if isinstance(c, dict) and "text" in c)
    return tools, results, texts


def gemini_view(body):
    tools = []
    for group in body.get("tools", []) or []:
        for decl in group.get("functionDeclarations", []) or []:
            schema = decl.get("parameters") or decl.get("parametersJsonSchema") or {}
            tools.append({"name": decl.get("name"), "properties": schema.get("properties", {})})
    results, texts = 0, []
    for content in body.get("contents", []):
        for part in content.get("parts", []):
            if "functionResponse" in part:
                results += 1
            elif "text" in part and content.get("role", "user") == "user":
                texts.append(part["text"])
    return tools, results, texts


# ------------------------------------------------------------ writing replies


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-provider/1"

    def log_message(self, fmt, *args):  # the record file is the log
        pass

    # -- plumbing

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def record(self, api, body, extra):
        headers = {}
        for key, value in self.headers.items():
            lower = key.lower()
            if lower in ("authorization", "x-api-key", "x-goog-api-key", "api-key"):
                value = f"<{len(value)} chars>"
            headers[lower] = value
        url = urllib.parse.urlsplit(self.path)
        entry = {
            "time": time.time(),
            "method": self.command,
            "path": url.path,
            "query": url.query,
            "api": api,
            "headers": headers,
            "body": body,
        }
        entry.update(extra)
        with RECORD_LOCK, open(self.server.record_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def send_json(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_sse(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, text):
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_sse(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def event(self, name, payload):
        prefix = f"event: {name}\n" if name else ""
        self.chunk(f"{prefix}data: {json.dumps(payload)}\n\n")

    # -- verbs

    def do_HEAD(self):
        self.record("probe", None, {})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        self.record("get", None, {})
        if path.endswith("/models"):
            if path.startswith("/v1beta"):
                self.send_json(200, {"models": [{"name": "models/fake-model", "supportedGenerationMethods": ["generateContent"]}]})
            else:
                self.send_json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}]})
        else:
            self.send_json(200, {})

    def do_POST(self):
        raw = self.read_body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        path = urllib.parse.urlsplit(self.path).path
        if path.endswith("/messages"):
            self.anthropic(body)
        elif path.endswith("/responses"):
            self.openai_responses(body)
        elif path.endswith("/chat/completions"):
            self.chat(body)
        elif ":countTokens" in path:
            self.record("gemini-count", body, {})
            self.send_json(200, {"totalTokens": 10})
        elif ":generateContent" in path or ":streamGenerateContent" in path:
            self.gemini(body, stream=":streamGenerateContent" in path)
        else:
            self.record("unknown", body, {})
            self.send_json(404, {"error": {"message": f"fake provider: no route for POST {path}"}})

    def limited(self, api, body, tools, results, texts):
        """A usage or rate limit (script "limit"): the first `count` model
        calls that declare tools (with `"any": true`, any model call) and
        hold at least `after` tool results are answered 429 in the API's own
        shape (LIMIT_SHAPES). True when it answered."""
        limit = self.server.script.limit
        if not limit or not (tools or limit.get("any")) or results < limit.get("after", 0):
            return False
        with self.server.script.hang_lock:
            if limit.get("count", 1) <= 0:
                return False
            limit["count"] = limit.get("count", 1) - 1
        self.record(api, body, {"user_texts": texts, "answered": "limit"})
        payload, headers = LIMIT_SHAPES[api](limit)
        data = json.dumps(payload).encode()
        self.send_response(429)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        return True

    def failing(self, api, body, shape):
        """Answers with the scripted error, if any; True when it did."""
        error = self.server.script.error
        if not error:
            return False
        self.record(api, body, {"user_texts": [], "answered": "error"})
        self.send_json(int(error.get("status", 400)), shape(error.get("message", "fake error"), int(error.get("status", 400))))
        return True

    def hang_if_scripted(self, api, body, tools, texts):
        """A scripted hang: records the request and never answers (the
        client gives up, or is killed, first)."""
        if not self.server.script.hangs(tools):
            return
        self.record(api, body, {"user_texts": texts, "hung": True})
        while True:
            time.sleep(3600)

    # -- Anthropic Messages

    def anthropic(self, body):
        if self.failing("anthropic", body, lambda m, s: {"type": "error", "error": {"type": "invalid_request_error", "message": m}}):
            return
        tools, results, texts = anthropic_view(body)
        if self.limited("anthropic", body, tools, results, texts):
            return
        self.hang_if_scripted("anthropic", body, tools, texts)
        answer = self.server.script.reply(tools, results, anthropic_last_tool_result(body))
        self.record("anthropic", body, {"user_texts": texts, "answered": list(answer)})
        model = body.get("model", "fake-model")
        if answer[0] == "text":
            block = {"type": "text", "text": answer[1]}
            stop = "end_turn"
        else:
            block = {"type": "tool_use", "id": new_id("toolu"), "name": answer[1], "input": answer[2]}
            stop = "tool_use"
        usage = {"input_tokens": USAGE["input"], "output_tokens": USAGE["output"],
                 "cache_creation_input_tokens": USAGE["cache_creation"], "cache_read_input_tokens": USAGE["cache_read"]}
        message = {"id": new_id("msg"), "type": "message", "role": "assistant", "model": model,
                   "content": [block], "stop_reason": stop, "stop_sequence": None, "usage": usage}
        if not body.get("stream"):
            self.send_json(200, message)
            return
        self.start_sse()
        self.event("message_start", {"type": "message_start", "message": dict(message, content=[], stop_reason=None)})
        if block["type"] == "text":
            self.event("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
            self.event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": block["text"]}})
        else:
            self.event("content_block_start", {"type": "content_block_start", "index": 0,
                                               "content_block": dict(block, input={})})
            self.event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}})
        self.event("content_block_stop", {"type": "content_block_stop", "index": 0})
        self.event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"output_tokens": USAGE["output"]}})
        self.event("message_stop", {"type": "message_stop"})
        self.end_sse()

    # -- OpenAI Responses

    def openai_responses(self, body):
        if self.failing("responses", body, openai_error):
            return
        tools, results, texts = responses_view(body)
        if self.limited("responses", body, tools, results, texts):
            return
        self.hang_if_scripted("responses", body, tools, texts)
        answer = self.server.script.reply(tools, results)
        self.record("responses", body, {"user_texts": texts, "answered": list(answer)})
        response_id = new_id("resp")
        if answer[0] == "text":
            item = {"type": "message", "id": new_id("msg"), "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": answer[1], "annotations": []}]}
        elif isinstance(answer[2], str):
            item = {"type": "custom_tool_call", "id": new_id("ctc"), "call_id": new_id("call"),
                    "name": answer[1], "input": answer[2], "status": "completed"}
        elif answer[1] == "local_shell":
            item = {"type": "local_shell_call", "id": new_id("lsc"), "call_id": new_id("call"), "status": "completed",
                    "action": {"type": "exec", "command": answer[2]["command"], "env": {}}}
        else:
            item = {"type": "function_call", "id": new_id("fc"), "call_id": new_id("call"), "name": answer[1],
                    "arguments": json.dumps(answer[2]), "status": "completed"}
        usage = {"input_tokens": OPENAI_INPUT, "input_tokens_details": {"cached_tokens": USAGE["cache_read"]},
                 "output_tokens": USAGE["output"], "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": OPENAI_INPUT + USAGE["output"]}
        response = {"id": response_id, "object": "response", "created_at": int(time.time()), "status": "completed",
                    "model": body.get("model", "fake-model"), "output": [item], "usage": usage,
                    "error": None, "incomplete_details": None}
        if not body.get("stream"):
            self.send_json(200, response)
            return
        self.start_sse()
        seq = itertools.count()
        def ev(name, payload):
            self.event(name, dict(payload, type=name, sequence_number=next(seq)))
        ev("response.created", {"response": dict(response, status="in_progress", output=[], usage=None)})
        ev("response.in_progress", {"response": dict(response, status="in_progress", output=[], usage=None)})
        if item["type"] == "message":
            ev("response.output_item.added", {"output_index": 0, "item": dict(item, status="in_progress", content=[])})
            ev("response.content_part.added", {"output_index": 0, "item_id": item["id"], "content_index": 0,
                                               "part": {"type": "output_text", "text": "", "annotations": []}})
            ev("response.output_text.delta", {"output_index": 0, "item_id": item["id"], "content_index": 0,
                                              "delta": answer[1]})
            ev("response.output_text.done", {"output_index": 0, "item_id": item["id"], "content_index": 0,
                                             "text": answer[1]})
            ev("response.content_part.done", {"output_index": 0, "item_id": item["id"], "content_index": 0,
                                              "part": item["content"][0]})
        elif item["type"] == "function_call":
            ev("response.output_item.added", {"output_index": 0, "item": dict(item, status="in_progress", arguments="")})
            ev("response.function_call_arguments.delta", {"output_index": 0, "item_id": item["id"],
                                                          "delta": item["arguments"]})
            ev("response.function_call_arguments.done", {"output_index": 0, "item_id": item["id"],
                                                         "arguments": item["arguments"]})
        else:
            ev("response.output_item.added", {"output_index": 0, "item": item})
        ev("response.output_item.done", {"output_index": 0, "item": item})
        ev("response.completed", {"response": response})
        self.end_sse()

    # -- OpenAI Chat Completions

    def chat(self, body):
        if self.failing("chat", body, openai_error):
            return
        tools, results, texts = chat_view(body)
        if self.limited("chat", body, tools, results, texts):
            return
        self.hang_if_scripted("chat", body, tools, texts)
        answer = self.server.script.reply(tools, results)
        self.record("chat", body, {"user_texts": texts, "answered": list(answer)})
        model = body.get("model", "fake-model")
        chat_id, created = new_id("chatcmpl"), int(time.time())
        usage = {"prompt_tokens": OPENAI_INPUT, "completion_tokens": USAGE["output"],
                 "total_tokens": OPENAI_INPUT + USAGE["output"],
                 "prompt_tokens_details": {"cached_tokens": USAGE["cache_read"]}}
        if answer[0] == "text":
            message = {"role": "assistant", "content": answer[1]}
            finish = "stop"
        else:
            arguments = answer[2] if isinstance(answer[2], str) else json.dumps(answer[2])
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": new_id("call"), "type": "function", "function": {"name": answer[1], "arguments": arguments}}]}
            finish = "tool_calls"
        if not body.get("stream"):
            self.send_json(200, {"id": chat_id, "object": "chat.completion", "created": created, "model": model,
                                 "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                                 "usage": usage})
            return
        self.start_sse()
        def chunk(delta, finish_reason=None, **extra):
            payload = {"id": chat_id, "object": "chat.completion.chunk", "created": created, "model": model,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
            payload.update(extra)
            self.event(None, payload)
        chunk({"role": "assistant", "content": ""})
        if answer[0] == "text":
            chunk({"content": answer[1]})
        else:
            call = message["tool_calls"][0]
            chunk({"tool_calls": [dict(call, index=0)]})
        chunk({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            self.event(None, {"id": chat_id, "object": "chat.completion.chunk", "created": created, "model": model,
                              "choices": [], "usage": usage})
        self.chunk("data: [DONE]\n\n")
        self.end_sse()

    # -- Gemini

    def gemini(self, body, stream):
        if self.failing("gemini", body, lambda m, s: {"error": {"code": s, "message": m, "status": "INVALID_ARGUMENT"}}):
            return
        tools, results, texts = gemini_view(body)
        if self.limited("gemini", body, tools, results, texts):
            return
        self.hang_if_scripted("gemini", body, tools, texts)
        answer = self.server.script.reply(tools, results)
        config = body.get("generationConfig") or {}
        if answer[0] == "text" and config.get("responseMimeType") == "application/json":
            # Gemini CLI's own side questions (model routing, next speaker,
            # loop check) want JSON matching a schema.
            schema = config.get("responseJsonSchema") or config.get("responseSchema") or {}
            answer = ("text", json.dumps(json_for_schema(schema)))
        self.record("gemini", body, {"user_texts": texts, "answered": list(answer), "stream": stream})
        if answer[0] == "text":
            part = {"text": answer[1]}
        else:
            part = {"functionCall": {"name": answer[1], "args": answer[2]}}
        payload = {"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
                   "usageMetadata": {"promptTokenCount": OPENAI_INPUT, "cachedContentTokenCount": USAGE["cache_read"],
                                     "candidatesTokenCount": USAGE["output"],
                                     "totalTokenCount": OPENAI_INPUT + USAGE["output"]},
                   "modelVersion": "fake-model"}
        if not stream:
            self.send_json(200, payload)
            return
        self.start_sse()
        self.event(None, payload)
        self.end_sse()


# Values for Gemini CLI's structured side questions, where a neutral answer matters.
SCHEMA_ANSWERS = {"next_speaker": "user", "model_choice": "flash", "complexity_score": 1}


def json_for_schema(schema, name=None):
    """A small value that satisfies a JSON schema (objects, enums, scalars)."""
    if name in SCHEMA_ANSWERS:
        return SCHEMA_ANSWERS[name]
    kind = str(schema.get("type", "object")).lower()
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "object":
        return {key: json_for_schema(sub, key) for key, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return []
    if kind in ("number", "integer"):
        return 1
    if kind == "boolean":
        return False
    return "fake"


# ------------------------------------------------------- rate-limit answers
#
# Each takes the script's "limit" ({"count", "reset": EPOCH, "kind",
# "retry_after": seconds}) and returns (JSON body, headers) of a 429.


def anthropic_limit(limit):
    """Anthropic: with `reset`, a subscriber past its usage limit; without,
    an API key past its rate limit."""
    payload = {"type": "error", "error": {"type": "rate_limit_error",
               "message": "This request would exceed your account's rate limit. Please try again later."}}
    headers = {"x-should-retry": "false"}
    if "reset" in limit:
        # Claude Code 2.1.197 reads a subscriber's limit only with the
        # claim header (which window: five_hour is "session limit").
        reset = str(int(limit["reset"]))
        headers.update({"anthropic-ratelimit-unified-status": "rejected",
                        "anthropic-ratelimit-unified-representative-claim": "five_hour",
                        "anthropic-ratelimit-unified-reset": reset,
                        "anthropic-ratelimit-unified-5h-status": "rejected",
                        "anthropic-ratelimit-unified-5h-reset": reset})
    return payload, headers


def openai_limit(limit):
    """OpenAI (Responses and Chat Completions). kind "rate" (default): a
    requests-per-minute limit, `retry-after` and `x-ratelimit-reset-requests`
    from `retry_after`; "quota": out of credits (`insufficient_quota`, no
    reset); "usage": a ChatGPT plan's usage limit as Codex's backend sends
    it (`usage_limit_reached` with `resets_at` / `resets_in_seconds`)."""
    kind = limit.get("kind", "rate")
    after = int(limit.get("retry_after", 20))
    if kind == "quota":
        return {"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                          "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}, {}
    if kind == "usage":
        reset = int(limit.get("reset", time.time() + after))
        return {"error": {"type": "usage_limit_reached", "message": "The usage limit has been reached",
                          "plan_type": "plus", "resets_at": reset,
                          "resets_in_seconds": max(0, reset - int(time.time()))}}, {}
    message = (f"Rate limit reached for fake-model in organization org-fake on requests per min (RPM): "
               f"Limit 3, Used 3, Requested 1. Please try again in {after}s.")
    return ({"error": {"message": message, "type": "requests", "param": None, "code": "rate_limit_exceeded"}},
            {"retry-after": str(after), "x-ratelimit-limit-requests": "3",
             "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": f"{after}s"})


def gemini_limit(limit):
    """Gemini: 429 RESOURCE_EXHAUSTED. kind "rate" (default): a per-minute
    quota with `google.rpc.RetryInfo` `retryDelay` (`retry_after`); "quota":
    a per-day quota (no delay)."""
    per_day = limit.get("kind") == "quota"
    after = limit.get("retry_after", 20)
    quota_id = ("GenerateRequestsPerDayPerProjectPerModel-FreeTier" if per_day
                else "GenerateRequestsPerMinutePerProjectPerModel-FreeTier")
    details = [{"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                                "quotaId": quota_id, "quotaDimensions": {"location": "global", "model": "fake-model"},
                                "quotaValue": "10"}]},
               {"@type": "type.googleapis.com/google.rpc.Help",
                "links": [{"description": "Learn more about Gemini API quotas",
                           "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}]
    message = "You exceeded your current quota, please check your plan and billing details."
    if not per_day:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{after}s"})
        message += f" Please retry in {after}s."
    return {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED", "details": details}}, {}


LIMIT_SHAPES = {"anthropic": anthropic_limit, "responses": openai_limit, "chat": openai_limit, "gemini": gemini_limit}


def openai_error(message, status):
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--script", required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--port-file")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.script = Script(args.script)
    server.record_path = args.record
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(str(port))
        os.replace(tmp, args.port_file)
    print(f"fake-provider listening on 127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
