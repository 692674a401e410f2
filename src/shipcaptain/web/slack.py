"""``POST /slack/interactions``: the Slack app's Interactivity request URL (the gate
buttons). No token: Slack's signature is the proof (see :mod:`shipcaptain.slack_actions`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from shipcaptain.web.api import web

router = APIRouter()


@router.post("/slack/interactions", include_in_schema=False)
async def interactions(request: Request) -> JSONResponse:
    """A button of a gate's message pressed in Slack: checked, then decided like the CLI."""
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    # a BadSignature goes to the app's error handler: 403 and the JSON error shape
    text = await run_in_threadpool(web(request).host.answer_slack, headers, body)
    return JSONResponse({"response_type": "ephemeral", "replace_original": False, "text": text})
