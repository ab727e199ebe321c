"""The demo's instruments: a narrator that prints what each person saw (secrets masked) and the real `bao` CLI."""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from devkit.children import die_with_parent
from devkit.openbao import find_bao
from devkit.standin import SlackStandIn

# Vault/OpenBao token shapes (s. service, b. batch, r. recovery; hvs./hvb./hvr. in Vault): shown as their first 6 chars.
TOKEN = re.compile(r"\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_-]{8,}")
_MENTION = re.compile(r"@([UW][A-Z0-9]{2,})\b")
_LABEL = re.compile(r"^\[([^\]]*)\] ?")
_SLACK_MENTION = re.compile(r"<@([UW][A-Z0-9]{2,})(?:\|[^>]*)?>")
_UPDATED = "(updated) "
RULE = "━" * 78


class DemoError(Exception):
    """A step of the demo did not go as it should; the message says which and what was seen."""


class Narrator:
    """Prints the demo: step headings, what people typed or clicked, and what Slack showed them since the last look."""

    def __init__(self, names: Mapping[str, str], out: TextIO | None = None):
        self.names = dict(names)
        self.out = out or sys.stdout
        self.standin: SlackStandIn | None = None
        self._hidden: dict[str, str] = {}
        self._seen = 0
        self._steps = 0
        self._versions: dict[tuple[str, str], list[str]] = {}  # (where, first line) → the message as last shown
        self._terminal: tuple[str, str] | None = None  # whose terminal the last shell lines were in
        self._logged: list[tuple[str, str]] = []  # (level, message): the bot's log lines shown in the transcript
        self._logged_seen = 0

    def hide(self, value: str | None, keep: int = 0) -> None:
        """Never print `value`: show its first `keep` characters and "…", or "[hidden]" when keep is 0."""
        if value:
            self._hidden[value] = value[:keep] + "…" if keep else "[hidden]"

    def mask(self, text: str) -> str:
        for value, shown in sorted(self._hidden.items(), key=lambda item: -len(item[0])):
            text = text.replace(value, shown)
        return TOKEN.sub(lambda match: match.group(0)[:6] + "…", text)

    def name(self, user_id: str | None) -> str:
        return self.names.get(user_id or "", user_id or "—")

    def say(self, text: str = "", indent: int = 0, *, terminal: tuple[str, str] | None = None) -> None:
        self._terminal = terminal
        pad = " " * indent
        for line in self.mask(text).splitlines() or [""]:
            print(pad + line if line else "", file=self.out)
        self.out.flush()

    def step(self, title: str, numbered: bool = True) -> None:
        if numbered:
            self._steps += 1
            title = f"Step {self._steps} · {title}"
        self.say(f"\n{RULE}\n{title}\n{RULE}")

    def act(self, user_id: str, action: str) -> None:
        self.say(f"▶ {self.name(user_id)} {action}")

    def note(self, text: str) -> None:
        self.say(f"· {text}", 2)

    def ephemeral(self, user_id: str, text: str) -> None:
        """The slash command's immediate answer (the HTTP reply to Slack, so not in the stand-in's record)."""
        self._show(f"only {self.name(user_id)} sees", text)

    def bot_log(self, level: str, message: str) -> None:
        """A line of the bot's log that belongs in the story (shown with the next look at Slack); any thread may call."""
        self._logged.append((level, message))

    def logged(self) -> list[str]:
        """The bot's log lines handed to bot_log so far."""
        return [message for _level, message in self._logged]

    def slack(self) -> int:
        """Print what appeared in Slack (and the bot's log lines) since the last call; the number of new entries."""
        assert self.standin is not None
        entries = self.standin.transcript()
        new, self._seen = entries[self._seen :], len(entries)
        for entry in new:
            match = _LABEL.match(entry)
            label, text = (match.group(1), entry[match.end() :]) if match else ("Slack", entry)
            self._show(self._label(label), self._changes(label, [line.removeprefix("    ") for line in text.split("\n")]))
        logged = self._logged[self._logged_seen :]
        self._logged_seen += len(logged)
        for level, message in logged:
            self._show(f"jitbot's log, {level}", message)
        return len(new) + len(logged)

    def shell(self, who: str, command: str, lines: list[str], env: str = "") -> None:
        """A command someone runs and what it printed; consecutive commands in one terminal share its heading."""
        terminal = (who, env)
        if self._terminal != terminal:
            self.say(f"{who}'s terminal{f' ({env})' if env else ''}:", 2)
        self.say(f"$ {command}", 4, terminal=terminal)
        for line in lines:
            self.say(line, 6, terminal=terminal)

    def _changes(self, label: str, lines: list[str]) -> str:
        """A message as shown; an update to one shown before as its title and what changed (- gone, + new)."""
        updated = lines[0].startswith(_UPDATED)
        lines[0] = lines[0].removeprefix(_UPDATED)
        key = (label, lines[0])
        before, self._versions[key] = self._versions.get(key), lines
        if not updated or before is None:
            return "\n".join(lines)
        shown = [f"(updated in place) {lines[0]}"]
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=before, b=lines, autojunk=False).get_opcodes():
            if op == "equal":
                continue
            heading = lines[j1 - 1] if j1 > 0 else ""
            if heading.startswith("*") and heading.endswith("*") and len(heading) > 2:
                shown.append(f"  {heading}")
            shown += [f"- {line}" for line in before[i1:i2]] + [f"+ {line}" for line in lines[j1:j2]]
        return "\n".join(shown)

    def _show(self, label: str, text: str) -> None:
        self.say(f"[{label}]", 2)
        self.say(self._names_in(text), 6)

    def _names_in(self, text: str) -> str:
        text = _SLACK_MENTION.sub(lambda m: "@" + self.name(m.group(1)), text)
        return _MENTION.sub(lambda m: "@" + self.name(m.group(1)), text)

    def _label(self, label: str) -> str:
        if label.startswith("DM @"):
            return f"DM jitbot → {self.name(label[4:])}"
        if label.startswith("group DM "):
            return "group DM jitbot → " + ", ".join(self.name(u.lstrip("@")) for u in label[9:].split())
        if label.startswith("only @"):
            who, _, where = label[6:].partition(" in ")
            return f"only {self.name(who)} sees" + (f", in {self._names_in(where)}" if where else "")
        return self._names_in(label)


@dataclass
class BaoResult:
    ok: bool
    data: dict[str, Any]
    error: str


class Bao:
    """Runs the `bao` CLI as a person would, with the address and token set explicitly; parses `-format=json`."""

    def __init__(self, addr: str, home: Path):
        self.binary = find_bao()
        self.addr = addr
        self.home = home  # its own HOME: no ~/.vault-token is read or written

    def env(self, token: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env.update(VAULT_ADDR=self.addr, BAO_ADDR=self.addr, HOME=str(self.home), NO_COLOR="1")
        env["NO_PROXY"] = env["no_proxy"] = ",".join(filter(None, [env.get("NO_PROXY"), "127.0.0.1", "localhost"]))
        if token:
            env.update(VAULT_TOKEN=token, BAO_TOKEN=token)
        return env

    def run(self, words: str, *args: str, token: str | None = None) -> BaoResult:
        """`bao <words> -format=json <args…>`; `token` is the caller's VAULT_TOKEN (None: none at all)."""
        argv = [self.binary, *words.split(), "-format=json", *args]
        try:
            done = subprocess.run(  # our own binary and arguments, no shell
                argv,
                env=self.env(token),
                capture_output=True,
                text=True,
                timeout=20,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent(),
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise DemoError(f"`bao {words}` could not run: {error}") from None
        if done.returncode != 0:
            return BaoResult(False, {}, short_error(done.stderr or done.stdout))
        try:
            data = json.loads(done.stdout) if done.stdout.strip() else {}
        except ValueError:
            data = {}
        return BaoResult(True, data if isinstance(data, dict) else {"value": data}, "")

    def must(self, words: str, *args: str, token: str | None = None) -> dict[str, Any]:
        result = self.run(words, *args, token=token)
        if not result.ok:
            raise DemoError(f"`bao {words}` failed: {result.error}")
        return result.data


def short_error(stderr: str) -> str:
    """Vault's error output in one line: "HTTP 403: permission denied" rather than the CLI's paragraph."""
    code = re.search(r"Code: (\d+)", stderr)
    found = re.findall(r"^\s*\* (.+)$", stderr, flags=re.MULTILINE)
    reasons = [r.strip() for r in found if not re.fullmatch(r"\d+ errors? occurred:?", r.strip())]
    if code:
        return f"HTTP {code.group(1)}: {'; '.join(reasons) or 'error'}"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "failed without a message"
