"""The live progress bar, seen the way a user sees it: ``sarzoo train`` on a real pseudo-terminal.

Off a terminal (CI logs, ``> log.txt``) there is no bar, only one line per epoch; that path is what
every other training test exercises, so this one makes stderr a tty."""
import os
import struct
import subprocess
import sys

import pytest

from ._train_common import sarzoo_cmd, subprocess_env, train_args


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals (pty, termios) are POSIX only")
def test_bar_shows_live_loss_psnr_ssim_on_a_terminal(tmp_path):
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()
    # a real terminal has a size; tqdm draws nothing on a 0-column one
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    proc = subprocess.Popen(sarzoo_cmd(train_args(tmp_path / "run", "--max-steps", 6)),
                            stdout=subprocess.DEVNULL, stderr=slave, env=subprocess_env(), close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=240) == 0
    text = b"".join(chunks).decode("utf-8", "replace")
    assert "epoch 1/" in text and "step" in text, text[-2000:]
    for word in ("loss", "psnr", "ssim"):
        assert word in text, (word, text[-2000:])
