"""`cxctl bounces import` on real-format samples (tests/send/fixtures/bounces): Postfix, Exim, Microsoft
365 and Gmail DSNs, a Yahoo ARF complaint and an out-of-office reply, from a Maildir, an mbox and an
IMAP folder of a real Dovecot on 127.0.0.1."""

from __future__ import annotations

import imaplib
import json
import mailbox
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from cxctl import store
from cxctl.delivery.bounces import import_bounces
from cxctl.delivery.mailboxes import open_source
from cxctl.store import email_hash
from cxctl.validation import load_workspace

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
NOW = "2026-11-20T12:00:00+00:00"
PEOPLE = {
    "hard": "Camille.Durand@orange.example",
    "exim": "lea.martin@free.example",
    "ms": "hugo.b@outlook.example",
    "gmail": "chloe.petit@gmail.example",
    "arf": "lucas.moreau@yahoo.example",
    "ooo": "hugo.bernard@laposte.example",
}


@pytest.fixture
def bounce_ws(tmp_path, monkeypatch):
    """A workspace whose store holds one sent invitation (with its Message-ID) per person, plus a planned
    reminder for the one who will complain."""
    import importlib.util
    import sys

    monkeypatch.setenv("CXCTL_SECRET", "test-secret-do-not-use-in-production")
    module = sys.modules.get("_root_conftest")
    if module is None:
        spec = importlib.util.spec_from_file_location("_root_conftest", Path(__file__).parents[1] / "conftest.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["_root_conftest"] = module
    root = module.write_workspace(tmp_path / "ws", {"deliverability.yaml": "deliverability:\n  soft_bounce_limit: 2\n"})
    ws = load_workspace(root)
    db = store.connect(ws.database)
    values = {}
    for i, (name, address) in enumerate(PEOPLE.items(), start=1):
        db.execute(
            "INSERT INTO contacts (id, external_id, email, email_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                i,
                f"C{i}",
                address.lower() if name != "hard" else address,
                email_hash(address),
                "2026-01-01",
                "2026-01-01",
            ],
        )
        message_id = f"<inv.{i}.7f3a9c@boutique.example>"
        db.execute(
            "INSERT INTO invitations (id, dedupe_key, token, contact_id, moment, send_at, status, message_id, sent_at,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, 'delivery_csat', ?, 'sent', ?, ?, ?, ?)",
            [
                i,
                f"k{i}",
                f"t{i}",
                i,
                "2026-11-20 09:00:00",
                message_id,
                "2026-11-20 09:00:00",
                "2026-11-20",
                "2026-11-20",
            ],
        )
        values.update({f"addr_{name}": address, f"mid_{name}": message_id, f"inv_{name}": str(i)})
    db.execute(
        "INSERT INTO invitations (id, dedupe_key, token, contact_id, moment, send_at, status, created_at, updated_at)"
        " VALUES (99, 'k99', 't99', 5, 'nps_relational', '2026-11-25 09:00:00', 'planned', '2026-11-20', '2026-11-20')"
    )
    yield ws, db, values
    db.conn.close()


def samples(values: dict[str, str]) -> dict[str, bytes]:
    out = {}
    for path in sorted(FIXTURES.glob("*.eml")):
        text = path.read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        out[path.stem] = text.encode("utf-8")
    return out


def make_maildir(folder: Path, messages: dict[str, bytes]) -> Path:
    box = mailbox.Maildir(folder, create=True)
    for data in messages.values():
        box.add(data)
    return folder


def check_effects(db, result) -> None:
    assert (result.read, result.hard, result.soft, result.complaints, result.not_bounces) == (7, 3, 2, 1, 1)
    assert result.matched_by == {"header": 5, "message_id": 1}  # Microsoft 365 returns the headers without ours
    reasons = dict(db.execute("SELECT email, reason FROM suppressions").fetchall())
    assert reasons == {
        PEOPLE["hard"]: "bounce",
        PEOPLE["exim"]: "bounce",
        PEOPLE["ms"]: "bounce",
        PEOPLE["gmail"]: "bounce",
        PEOPLE["arf"]: "complaint",
    }  # the soft ones after 2 (the limit)
    statuses = dict(db.execute("SELECT id, status FROM invitations").fetchall())
    assert statuses == {1: "bounced", 2: "bounced", 3: "bounced", 4: "sent", 5: "sent", 6: "sent", 99: "cancelled"}
    assert (
        db.execute("SELECT last_error FROM invitations WHERE id = 1")
        .fetchone()[0]
        .startswith("late bounce: 5.1.1 smtp; 550 5.1.1")
    )
    # Addresses are kept as their hash only; the rates read moment and day.
    assert db.execute("SELECT COUNT(*), COUNT(DISTINCT email_hash) FROM bounces").fetchone() == (6, 5)
    assert set(db.execute("SELECT moment, sent_day FROM bounces").fetchall()) == {("delivery_csat", "2026-11-20")}


def test_a_maildir_of_bounces_suppresses_once_and_moves_what_it_read(bounce_ws, tmp_path):
    ws, db, values = bounce_ws
    folder = make_maildir(tmp_path / "Maildir", samples(values))
    source = open_source(str(folder))
    result = import_bounces(ws, db, source, store_now(), move_to="Processed")
    check_effects(db, result)
    assert result.cancelled == 1 and result.moved == 6
    assert len(mailbox.Maildir(folder)) == 1  # the out-of-office reply is left for a person
    assert len(mailbox.Maildir(folder).get_folder("Processed")) == 6
    # Again, the moved messages back in the inbox: nothing changes.
    make_maildir(folder, samples(values))
    again = import_bounces(ws, db, open_source(str(folder)), store_now())
    assert (again.hard, again.soft, again.complaints, again.already_imported, again.suppressed) == (0, 0, 0, 6, 0)
    assert db.execute("SELECT COUNT(*) FROM bounces").fetchone()[0] == 6


def store_now():
    from cxctl.core.timeutil import parse_now

    return parse_now(NOW)


def test_an_mbox_through_the_cli(bounce_ws, tmp_path, cli):
    ws, db, values = bounce_ws
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(path)
    for data in samples(values).values():
        box.add(data)
    box.flush()
    code, out, err = cli(
        "bounces", "import", str(path), "-w", str(ws.root), "--now", NOW, "--json", "--move-to", "done.mbox"
    )
    assert code == 0, err
    result = json.loads(out)
    assert (result["hard"], result["soft"], result["complaints"], result["moved"]) == (3, 2, 1, 6)
    check_effects(db, type("R", (), {k: v for k, v in result.items()})())
    assert len(mailbox.mbox(path)) == 1 and len(mailbox.mbox(tmp_path / "done.mbox")) == 6
    code, out, _ = cli("bounces", "import", str(path), "-w", str(ws.root), "--now", NOW)
    assert code == 0 and "not bounces" in out


def test_a_forged_invitation_header_cannot_suppress_someone_else(bounce_ws, tmp_path):
    """A report naming invitation 1 (Camille) for another address is tied by its Message-ID, not the header."""
    ws, db, values = bounce_ws
    forged = samples({**values, "inv_exim": "1"})["exim-hard"]
    result = import_bounces(ws, db, open_source(str(make_maildir(tmp_path / "M", {"x": forged}))), store_now())
    assert result.matched_by == {"message_id": 1}
    assert dict(db.execute("SELECT id, status FROM invitations WHERE id IN (1, 2)").fetchall()) == {
        1: "sent",
        2: "bounced",
    }


def test_imap_needs_tls_off_this_machine_and_no_password_in_the_address(monkeypatch):
    from cxctl.core.errors import UsageError

    with pytest.raises(UsageError, match="not sent in clear over the network: use imaps://mail.example.com"):
        open_source("imap://mail.example.com/INBOX")
    with pytest.raises(UsageError, match="the password does not go in the address"):
        open_source("imaps://u:secret@mail.example.com/INBOX")
    monkeypatch.delenv("CXCTL_IMAP_PASSWORD", raising=False)
    with pytest.raises(UsageError, match="no IMAP login: set CXCTL_IMAP_PASSWORD"):
        open_source("imaps://bounces@127.0.0.1/INBOX")


# --- IMAP against a real Dovecot ---------------------------------------------------------------------

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dovecot():
    """Dovecot (Debian's dovecot-imapd) on 127.0.0.1, a passwd file with one user, Maildirs in tmp_path.
    Run as root (CI), its login and mail processes take Debian's unprivileged users."""
    if not Path(DOVECOT).exists():
        if os.environ.get("CI"):
            pytest.fail("dovecot is not installed: .ci/run installs dovecot-imapd")
        pytest.skip("dovecot is not installed (apt-get install -y dovecot-imapd)")
    import grp
    import pwd
    import tempfile

    # Not under pytest's tmp_path: its folders are 0700, and Dovecot's own users must reach the files.
    root = Path(tempfile.mkdtemp(prefix="cxctl-dovecot-"))
    os.chmod(root, 0o755)
    for sub in ("run", "state", "mail", "home"):
        (root / sub).mkdir(parents=True)
    if os.geteuid() == 0:
        login, internal = "dovenull", "dovecot"
        uid, gid = pwd.getpwnam("dovecot").pw_uid, grp.getgrnam("dovecot").gr_gid
        for sub in ("mail", "home"):
            os.chown(root / sub, uid, gid)
    else:
        login = internal = pwd.getpwuid(os.getuid()).pw_name
        uid, gid = os.getuid(), os.getgid()
    port = _port()
    (root / "passwd").write_text("bounces:{PLAIN}imap-test-password\n", encoding="utf-8")
    (root / "dovecot.conf").write_text(
        f"""\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
default_internal_user = {internal}
default_internal_group = {grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name}
default_login_user = {login}
first_valid_uid = {min(uid, 1)}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
""",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [DOVECOT, "-c", str(root / "dovecot.conf"), "-F"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            client = imaplib.IMAP4("127.0.0.1", port, timeout=5)
            client.login("bounces", "imap-test-password")
            break
        except (OSError, imaplib.IMAP4.error):
            if time.monotonic() > deadline or process.poll() is not None:
                log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
                process.kill()
                pytest.fail(f"dovecot did not start: {log[-2000:]}")
            time.sleep(0.2)
    yield port, client
    client.logout()
    process.terminate()
    process.wait(10)
    shutil.rmtree(root, ignore_errors=True)


def test_an_imap_folder_of_a_real_dovecot(bounce_ws, dovecot, cli, monkeypatch):
    ws, db, values = bounce_ws
    port, client = dovecot
    for data in samples(values).values():
        client.append("INBOX", None, None, data.replace(b"\n", b"\r\n"))
    monkeypatch.setenv("CXCTL_IMAP_USER", "bounces")
    monkeypatch.setenv("CXCTL_IMAP_PASSWORD", "imap-test-password")
    url = f"imap://127.0.0.1:{port}/INBOX"
    code, out, err = cli("bounces", "import", url, "-w", str(ws.root), "--now", NOW, "--json", "--move-to", "Processed")
    assert code == 0, err
    result = json.loads(out)
    check_effects(db, type("R", (), result)())
    assert result["moved"] == 6
    client.select("INBOX")
    assert len(client.search(None, "ALL")[1][0].split()) == 1  # the out-of-office reply stays, unread
    client.select("Processed")
    assert len(client.search(None, "ALL")[1][0].split()) == 6
    code, out, _ = cli(
        "bounces", "import", f"imap://127.0.0.1:{port}/Processed", "-w", str(ws.root), "--now", NOW, "--json"
    )
    assert json.loads(out)["already_imported"] == 6 and db.execute("SELECT COUNT(*) FROM bounces").fetchone()[0] == 6
