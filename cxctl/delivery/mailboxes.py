"""Where bounces and complaints wait: a Maildir, an mbox file, or an IMAP folder (`imaps://host/Folder`,
credentials from environment variables). Each source lists its messages as (key, bytes) and can move
the processed ones to another folder, so `cxctl bounces import` runs from cron over the same mailbox.
"""

from __future__ import annotations

import contextlib
import imaplib
import mailbox
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cxctl.core.errors import UsageError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Source:
    """A mailbox: its messages, and moving the processed ones."""

    name = "mailbox"

    def messages(self) -> Iterator[tuple[str, bytes]]:
        raise NotImplementedError

    def move(self, keys: list[str], folder: str) -> int:
        raise NotImplementedError

    def close(self) -> None:
        return None


class MaildirSource(Source):
    name = "maildir"

    def __init__(self, path: Path):
        self.path = path
        self.box = mailbox.Maildir(path, factory=None, create=False)

    def messages(self) -> Iterator[tuple[str, bytes]]:
        for key in sorted(self.box.keys()):
            yield key, self.box.get_bytes(key)

    def move(self, keys: list[str], folder: str) -> int:
        """Into the Maildir++ subfolder `folder` (`.folder`, as Dovecot and Courier lay them out)."""
        target = self.box.get_folder(folder) if folder in self.box.list_folders() else self.box.add_folder(folder)
        for key in keys:
            target.add(self.box.get_message(key))
            self.box.remove(key)  # after the copy: a crash in between leaves a duplicate, never a loss
        return len(keys)


class MboxSource(Source):
    name = "mbox"

    def __init__(self, path: Path):
        self.path = path
        self.box = mailbox.mbox(path, factory=None, create=False)

    def messages(self) -> Iterator[tuple[str, bytes]]:
        for key in self.box.keys():  # noqa: SIM118 (iterating a mailbox yields messages, not keys)
            yield str(key), self.box.get_bytes(key)

    def move(self, keys: list[str], folder: str) -> int:
        """Into the mbox file `folder` beside this one."""
        target = mailbox.mbox(self.path.parent / folder, create=True)
        self.box.lock()
        target.lock()
        try:
            for key in keys:
                target.add(self.box.get_message(int(key)))  # type: ignore[arg-type]  # mbox keys are ints
            target.flush()
            for key in keys:
                self.box.remove(int(key))  # type: ignore[arg-type]
            self.box.flush()
        finally:
            target.unlock()
            self.box.unlock()
        return len(keys)


class ImapSource(Source):
    """An IMAP folder, read by UID (stable across sessions); TLS unless the server is on this machine."""

    name = "imap"

    def __init__(self, url: str, user_env: str, password_env: str):
        parts = urlsplit(url)
        if parts.password:
            raise UsageError(
                f"{parts.scheme}://…: the password does not go in the address (it would land in shell "
                f"history and cron logs): put it in the environment variable {password_env}"
            )
        host = parts.hostname or ""
        if parts.scheme == "imap" and host not in LOOPBACK:
            raise UsageError(
                f"imap://{host}: a mailbox password is not sent in clear over the network: use imaps://{host}"
            )
        user = unquote(parts.username) if parts.username else os.environ.get(user_env)
        password = os.environ.get(password_env)
        if not user or not password:
            missing = password_env if user else f"{user_env} (or user@ in the address)"
            raise UsageError(f"no IMAP login: set {missing} before `cxctl bounces import {parts.scheme}://{host}/…`")
        self.folder = unquote(parts.path.lstrip("/")) or "INBOX"
        try:
            if parts.scheme == "imaps":
                self.client: imaplib.IMAP4 = imaplib.IMAP4_SSL(host, parts.port or 993, timeout=30)
            else:
                self.client = imaplib.IMAP4(host, parts.port or 143, timeout=30)
            self.client.login(user, password)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise UsageError(
                f"{parts.scheme}://{host}: cannot log in ({exc}): check the address and the credentials "
                f"in {user_env}/{password_env}"
            ) from None
        status, _ = self.client.select(_quote(self.folder))
        if status != "OK":
            raise UsageError(f"{parts.scheme}://{host}: no folder {self.folder!r}: name an existing folder, e.g. INBOX")

    def messages(self) -> Iterator[tuple[str, bytes]]:
        _, found = self.client.uid("SEARCH", "ALL")
        for uid in (found[0] or b"").split():
            _, data = self.client.uid("FETCH", uid.decode(), "(BODY.PEEK[])")  # PEEK: reading does not mark it seen
            raw = next((item[1] for item in data if isinstance(item, tuple)), None)
            if raw is not None:
                yield uid.decode(), raw

    def move(self, keys: list[str], folder: str) -> int:
        if not keys:
            return 0
        self.client.create(_quote(folder))  # already there: a NO answer, harmless
        uids = ",".join(keys)
        status, _ = self.client.uid("COPY", uids, _quote(folder))
        if status != "OK":
            raise UsageError(f"the IMAP server refused to copy to {folder!r}: check the folder name and your rights")
        self.client.uid("STORE", uids, "+FLAGS", "(\\Deleted)")
        self.client.expunge()
        return len(keys)

    def close(self) -> None:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            self.client.logout()


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def open_source(source: str, *, user_env: str = "CXCTL_IMAP_USER", password_env: str = "CXCTL_IMAP_PASSWORD") -> Source:
    """The mailbox that `source` names: imaps://… (imap:// on this machine), a Maildir folder, or an mbox file."""
    if source.startswith(("imaps://", "imap://")):
        return ImapSource(source, user_env, password_env)
    path = Path(source)
    if path.is_dir():
        if not (path / "cur").is_dir() or not (path / "new").is_dir():
            raise UsageError(
                f"{path} is a folder but not a Maildir (no cur/ and new/): name the Maildir, an mbox file, "
                f"or imaps://host/Folder"
            )
        return MaildirSource(path)
    if path.is_file():
        return MboxSource(path)
    raise UsageError(f"{source}: no such Maildir or mbox file; or give imaps://host/Folder")
