"""`billing up`'s mail sink keeps what the engine emails as files."""

from __future__ import annotations

import smtplib
import socket
from email.message import EmailMessage
from pathlib import Path

from engine.cli.mailsink import MailSink


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_each_message_becomes_an_eml_file(tmp_path: Path) -> None:
    sink = MailSink(tmp_path / "mail", _free_port()).start()
    try:
        assert sink.url.startswith(f"smtp://127.0.0.1:{sink.port}")
        for subject in ("Invoice INV-0001", "Your payment failed"):
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "billing@example.com", "a@x.io", subject
            msg.set_content("Grüezi")
            with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
                smtp.send_message(msg)
    finally:
        sink.stop()
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert [f.name[-9:] for f in files] == ["00001.eml", "00002.eml"]
    assert b"Subject: Invoice INV-0001" in files[0].read_bytes()
    assert b"Subject: Your payment failed" in files[1].read_bytes()
