"""``citebot telegram`` as a webhook server: it registers its URL and secret, and takes updates only with it.

Also: a missing or rejected token is one line on standard error and a non-zero exit, without the token.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support.fake_telegram import TOKEN, FakeTelegram
from tests.support.telegram_harness import BotProcess, bot_environment, free_port, start_webhook_bot

pytestmark = pytest.mark.slow  # runs the real citebot telegram process

SECRET = "s3cret-Token_for-tests"


@pytest.fixture(scope="module")
def hook_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def bot(server: FakeTelegram, hook_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    workdir = tmp_path_factory.mktemp("telegram-webhook")
    process = start_webhook_bot(server, workdir, hook_port, "/telegram/hook", TELEGRAM_WEBHOOK_SECRET=SECRET)
    yield process
    assert process.terminate(sig=signal.SIGINT) == 0, process.stderr  # Ctrl-C stops it cleanly too
    assert TOKEN not in process.stderr and SECRET not in process.stderr


def _post(port: int, update: dict, secret: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/telegram/hook", data=json.dumps(update).encode(), headers=headers
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_webhook_is_registered_with_its_secret(bot: BotProcess, server: FakeTelegram, hook_port: int) -> None:
    assert server.webhook == {"url": f"http://127.0.0.1:{hook_port}/telegram/hook", "secret_token": SECRET}
    call = server.calls_to("setWebhook")[-1]
    assert call.params["allowed_updates"] == ["message", "callback_query", "inline_query"]
    assert not server.calls_to("getUpdates")  # no polling in webhook mode
    assert [c["command"] for c in server.commands or []] == ["start", "help", "articles", "use", "ask"]


def test_updates_pushed_to_the_webhook_are_answered(bot: BotProcess, server: FakeTelegram) -> None:
    user = server.user(31, "Ann")
    question = server.send_text(server.private_chat(user), user, "Which two roads meet at Saraqeb?")
    reply = server.wait_reply(question)[0]
    assert "the M4 and M5" in reply.text and "paragraph 9 of 20" in reply.text
    assert server.wait_for(lambda: [s for u, s in server.deliveries if s == 200], 10)
    query = server.press(reply, "Next match")
    assert server.wait_for(lambda: query in server.callback_answers, 30)
    assert server.wait_for(lambda: server.current(reply).edits, 30)


def test_a_wrong_or_missing_secret_is_refused(bot: BotProcess, server: FakeTelegram, hook_port: int) -> None:
    user = server.user(32, "Eve")
    chat = server.private_chat(user)
    server.send_text(chat, user, "/help")  # the chat exists, the bot has talked in it
    server.wait_for(lambda: server.messages_in(chat["id"]), 30)

    def update(update_id: int, text: str) -> dict:
        message = {"message_id": 500 + update_id, "date": int(time.time()), "chat": chat, "from": user, "text": text}
        return {"update_id": 900_000 + update_id, "message": message}

    assert _post(hook_port, update(1, "Who withdrew from Nayrab?"), "wrong-secret") == 403
    assert _post(hook_port, update(2, "Who withdrew from Nayrab?"), None) == 403
    assert _post(hook_port, update(3, "Who denied the claim?"), SECRET) == 200  # the same, with the secret
    answered = server.wait_for(lambda: len(server.messages_in(chat["id"])) == 2 and server.messages_in(chat["id"]), 30)
    assert "Ankara has denied the claim." in answered[1].text
    assert not any("Nayrab" in m.text for m in server.messages_in(chat["id"]))


def test_a_missing_token_is_one_line_and_a_non_zero_exit(run_citebot) -> None:
    result = run_citebot("telegram")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("citebot: error: TELEGRAM_BOT_TOKEN is not set")


def test_a_rejected_token_is_one_line_without_the_token(run_citebot, tmp_path) -> None:
    wrong = "123456789:AAWrong-token-the-bot-was-given"
    with FakeTelegram() as fake:
        env = bot_environment(fake, tmp_path / "data", TELEGRAM_BOT_TOKEN=wrong)
        result = run_citebot("telegram", env={k: v for k, v in env.items() if k.startswith(("TELEGRAM_", "NO_"))})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == (
        f"citebot: error: the Bot API at {fake.base_url} rejected TELEGRAM_BOT_TOKEN; "
        "check the token @BotFather gave you"
    )
    assert wrong not in result.stderr and wrong.split(":")[1] not in result.stderr
    assert [c.method for c in fake.calls] == ["getMe"]  # refused before the model was loaded or anything else


def test_an_unreachable_bot_api_is_one_line(run_citebot, tmp_path) -> None:
    result = run_citebot(
        "telegram",
        env={"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": f"http://127.0.0.1:{free_port()}/bot", "NO_PROXY": "*"},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("citebot: error: cannot reach the Bot API at http://127.0.0.1:")
    assert TOKEN not in result.stderr
