"""Evidence that a message reached the mail server: its Message-ID in a relay log or in a mailbox.

After a `kill -9` the messages in flight are in doubt: the server may have taken them just before the
process died. cxctl stores each message's Message-ID *before* handing it over (`<cx.ID.…@domain>`),
so the relay's own record settles each one (cxctl.delivery.in_doubt.reconcile):

- a relay log: Postfix (`cleanup: QID: message-id=<…>` plus a `qmgr: QID: from=<…>` or `status=sent`
  line for the same queue id: queued, i.e. accepted), Exim (`<=` arrival line with `id=…`), Sendmail
  (`msgid=<…>` on the `from=` line), or any line that carries `message-id=<…>` and `status=sent`;
- a mailbox that received a BCC or journal copy: a Maildir (cur/ and new/), an mbox file, or a folder of
  .eml files.

Only headers are read; a file that is none of these is an error naming it, never an empty result.
"""

from __future__ import annotations

import email.parser
import email.policy
import mailbox
import re
from dataclasses import dataclass, field
from pathlib import Path

from cxctl.core.errors import UsageError

_POSTFIX_MESSAGE_ID = re.compile(r"\]: ([0-9A-Za-z]+): message-id=<([^>\s]*)>")
_POSTFIX_QUEUED = re.compile(
    r"\]: ([0-9A-Za-z]+): (?:from=<[^>]*>, size=|.*\bstatus=(?:sent|deferred|bounced|expired)\b)"
)
_EXIM_ARRIVAL = re.compile(r" <= .*?\bid=<?([^>\s]+)>?")
_SENDMAIL_FROM = re.compile(r": from=<[^>]*>, .*\bmsgid=<([^>\s]+)>")
_GENERIC = re.compile(r"message-id=<([^>\s]+)>.*\bstatus=sent\b|\bstatus=sent\b.*message-id=<([^>\s]+)>", re.IGNORECASE)


@dataclass
class Evidence:
    """Message-IDs (without angle brackets) the server is known to have accepted, with where each was seen."""

    accepted: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def add(self, message_id: str, place: str) -> None:
        self.accepted.setdefault(message_id.strip("<>"), place)


def bare(message_id: str) -> str:
    """A Message-ID as evidence keys it: without its angle brackets."""
    return message_id.strip().strip("<>")


def read_relay_log(path: Path, evidence: Evidence) -> int:
    """Add the messages a relay log shows as accepted; return how many lines were read.
    Postfix lines are joined by queue id: the message-id line alone does not prove the message was
    queued (a client that dies during DATA leaves one too)."""
    ids: dict[str, tuple[str, str]] = {}
    queued: set[str] = set()
    lines = 0
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                lines = number
                place = f"{path}:{number}"
                found = _POSTFIX_MESSAGE_ID.search(line)
                if found:
                    ids.setdefault(found.group(1), (found.group(2), place))
                found = _POSTFIX_QUEUED.search(line)
                if found:
                    queued.add(found.group(1))
                for pattern in (_EXIM_ARRIVAL, _SENDMAIL_FROM):
                    found = pattern.search(line)
                    if found:
                        evidence.add(found.group(1), place)
                found = _GENERIC.search(line)
                if found:
                    evidence.add(found.group(1) or found.group(2), place)
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot read the relay log ({exc.strerror}): give a readable file to --relay-log"
        ) from None
    for queue_id, (message_id, place) in ids.items():
        if queue_id in queued:
            evidence.add(message_id, place)
    evidence.sources.append(f"relay log {path} ({lines} lines)")
    return lines


_HEADERS = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def _message_id_of(data: bytes) -> str | None:
    head = data.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in data[:65536] else data.split(b"\n\n", 1)[0]
    value = _HEADERS.parsebytes(head + b"\n\n").get("Message-ID")
    return bare(str(value)) if value else None


def read_mailbox(path: Path, evidence: Evidence) -> int:
    """Add the Message-IDs of a Maildir, an mbox file or a folder of .eml files; return the messages read."""
    count = 0
    if path.is_dir():
        folders = [path / "cur", path / "new"] if (path / "cur").is_dir() or (path / "new").is_dir() else [path]
        for folder in folders:
            for item in sorted(folder.iterdir()):
                if not item.is_file() or item.name.startswith("."):
                    continue
                if folder is path and item.suffix != ".eml":
                    continue
                with open(item, "rb") as handle:
                    message_id = _message_id_of(handle.read(65536))
                count += 1
                if message_id:
                    evidence.add(message_id, str(item))
        kind = "Maildir" if folders[0] is not path else "folder"
    elif path.is_file():
        with open(path, "rb") as handle:
            if handle.read(5) not in (b"", b"From "):
                raise UsageError(
                    f"{path}: not an mbox file (it does not start with 'From '): give a Maildir folder, "
                    f"an mbox file or a folder of .eml files to --mailbox"
                )
        box = mailbox.mbox(path, factory=None, create=False)
        try:
            for key in box.iterkeys():
                message = box.get_message(key)
                count += 1
                if message["Message-ID"]:
                    evidence.add(bare(str(message["Message-ID"])), f"{path} message {count}")
        finally:
            box.close()
        kind = "mbox"
    else:
        raise UsageError(
            f"{path}: no such file or folder: give a Maildir folder, an mbox file or a folder of .eml "
            f"files to --mailbox"
        )
    evidence.sources.append(f"{kind} {path} ({count} messages)")
    return count


def gather(relay_logs: list[Path], mailboxes: list[Path]) -> Evidence:
    """Everything the given logs and mailboxes show as accepted by the server."""
    if not relay_logs and not mailboxes:
        raise UsageError(
            "no evidence given: pass the relay's log with --relay-log FILE (Postfix, Exim, Sendmail) "
            "or a mailbox that receives a BCC/journal copy with --mailbox PATH"
        )
    evidence = Evidence()
    for path in relay_logs:
        read_relay_log(Path(path), evidence)
    for path in mailboxes:
        read_mailbox(Path(path), evidence)
    return evidence
