"""`sparsebench leaderboard serve` answers HTTP and stops cleanly on Ctrl-C (issue 21, newcomer list)."""
from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request


def test_serve_answers_and_stops_on_sigint(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html><body>hello leaderboard</body></html>")
    proc = subprocess.Popen([sys.executable, "-m", "benchmark.cli", "leaderboard", "serve", "--site", str(site),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()                      # "serving SITE on http://127.0.0.1:PORT/ (Ctrl-C to stop)"
        url = line.split(" on ")[1].split()[0]
        with urllib.request.urlopen(url + "index.html", timeout=30) as r:
            assert r.status == 200 and b"hello leaderboard" in r.read()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert rc == 0 and "Traceback" not in err
