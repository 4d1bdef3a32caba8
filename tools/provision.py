#!/usr/bin/env python3
"""Put TLS certificates on a board's modem and set its SSL context, through mpremote.

Owns the host side of provisioning: checking the files before anything is sent,
choosing the modem file names and the ``AT+CSSLCFG`` profile, moving the bytes to
the board without printing them, and turning the board's result lines into a
report with the manual's error codes.  The board side is ``tools/provision_dev.py``
(it calls ``atmq.tls``).

    provision.py --port /dev/ttyUSB0 --board lilygo-t-sim7600x --profile aws \\
        --ca AmazonRootCA1.pem --cert dev.crt --key dev.key
    provision.py --port socket://127.0.0.1:PORT --board boards/unix.json \\
        --modem tcp:127.0.0.1:7600 --profile mosquitto-tls --ca ca.crt
    provision.py --board boards/unix.json --profile aws --ca ... --dry-run

Host checks (no board needed): each file exists, holds 1..10240 bytes (AT+CCERTDOWN
<len>, SIM767XX manual 17.2.2), is PEM with the right label (CERTIFICATE for --ca and
--cert, an unencrypted PRIVATE KEY for --key); the certificate and key belong together
and are not expired (openssl, when installed).  Then one mpremote session copies each
file to ``:.prov-<role>.tmp`` and runs provision_dev.py, which downloads them to the
modem, lists them (AT+CCERTLIST), configures the context and reads it back; the
temporary files are deleted on the board in every case.

Profiles (atmq.tls): ``aws`` (mutual TLS: --ca --cert --key, SNI on),
``mosquitto-tls`` (verify the server with --ca; mutual when --cert/--key are given),
``plain`` (no TLS: no files; only checks the modem link and lists its certificates).

Exit status: 0 provisioned and verified, 1 the board or modem failed, 2 bad input.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

_HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(_HERE)
for _p in (os.path.join(ROOT, "lib"), _HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import boardarg  # noqa: E402

from atmq import board as boardmod  # noqa: E402
from atmq import tls  # noqa: E402
from atmq.errors import ConfigError  # noqa: E402

DEVICE_SCRIPT = os.path.join(_HERE, "provision_dev.py")
PROFILES = ("aws", "mosquitto-tls", "plain")
EXIT_OK, EXIT_DEVICE, EXIT_INPUT = 0, 1, 2
# AT+CSSLCFG=<ctx> answer, manual 17.2.1: +CSSLCFG: <ctx>,<sslversion>,<authmode>,
# <ignoreltime>,<negotiatetime>,<ca>,<clientcert>,<clientkey>,<password>,<enableSNI>,
# <ignorecertCN>,<use_tickets>,<ciphersuites>
READBACK_FIELDS = ("ctx", "sslversion", "authmode", "ignorelocaltime", "negotiatetime",
                   "cacert", "clientcert", "clientkey", "password", "sni", "ignorecertcn")

# What the manual says a bare ERROR means at each step (no code is given there).
STEP_HINTS = {
    "download": "AT+CCERTDOWN (manual 17.2.2) answers only ERROR on failure: name not 5..55 "
                "bytes ending .pem/.der, length not 1..10240, or no room in the module's "
                "file system",
    "list": "AT+CCERTLIST (manual 17.2.3)",
    "configure": "AT+CSSLCFG (manual 17.2.1): a value out of range or a file name the module "
                 "rejects",
    "link": "the modem did not answer AT: check power, the board's UART pins and baud",
    "open": "the modem UART (or tcp:/pty device of a host board) could not be opened",
}


class InputError(Exception):
    """A file or option is wrong; nothing was sent to the board."""


class DeviceError(Exception):
    """mpremote or the board failed before the device script could report."""


def venv_tool(name):
    p = os.path.join(ROOT, ".venv", "bin", name)
    return p if os.path.exists(p) else (shutil.which(name) or name)


# ---- host-side checks -------------------------------------------------------------------

class CertFile:
    """One file to provision: role (cacert/clientcert/clientkey), local path, modem name."""

    def __init__(self, role, path, name):
        self.role = role
        self.path = path
        self.name = name
        self.tmp = ".prov-%s.tmp" % role  # on the board, deleted after the download
        self.size = 0


_LABELS = {"cacert": ("CERTIFICATE",), "clientcert": ("CERTIFICATE",),
           "clientkey": ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")}
_OPTION = {"cacert": "--ca", "clientcert": "--cert", "clientkey": "--key"}


def check_file(f):
    """Read and check one file as the modem will take it; returns its bytes."""
    what = "%s %s" % (_OPTION[f.role], f.path)
    if not os.path.exists(f.path):
        raise InputError("%s: no such file" % what)
    if not os.path.isfile(f.path):
        raise InputError("%s: not a regular file" % what)
    try:
        with open(f.path, "rb") as fh:
            data = fh.read(tls.CERT_MAX + 1)
            f.size = os.fstat(fh.fileno()).st_size
    except OSError as e:
        raise InputError("%s: cannot read: %s" % (what, e.strerror)) from None
    if f.size == 0:
        raise InputError("%s: empty file" % what)
    if f.size > tls.CERT_MAX:
        raise InputError("%s: %d bytes, too large for the modem: AT+CCERTDOWN takes 1..%d "
                         "bytes per file (SIM767XX manual 17.2.2)"
                         % (what, f.size, tls.CERT_MAX))
    if b"-----BEGIN " not in data:
        hint = ""
        if data[:1] == b"\x30":
            hint = " (it looks like DER: convert it with `openssl %s -inform der -in %s " \
                   "-out %s.pem`)" % ("pkey" if f.role == "clientkey" else "x509",
                                      f.path, os.path.splitext(f.path)[0])
        raise InputError("%s: not PEM (no -----BEGIN line)%s" % (what, hint))
    labels = re.findall(rb"-----BEGIN ([A-Z0-9 ]+)-----", data)
    want = _LABELS[f.role]
    if b"ENCRYPTED" in data and f.role == "clientkey":
        raise InputError("%s: the private key is encrypted; the modem profile sets no "
                         "password file: give an unencrypted key (openssl pkey -in %s -out "
                         "plain.key)" % (what, f.path))
    if not any(lb.decode() in want for lb in labels):
        raise InputError("%s: PEM holds %s, expected %s" % (
            what, ", ".join(sorted({lb.decode() for lb in labels})) or "nothing",
            " or ".join(want)))
    try:
        tls.check_cert(tls.check_name(f.name), data)  # the same check the board makes
    except (ValueError, ConfigError) as e:
        raise InputError("%s: %s" % (what, e)) from None
    return data


def _openssl(args):
    return subprocess.run(["openssl"] + args, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=30)


def check_pair(cert, key):
    """Certificate and key hold the same public key (openssl); a note string, or raises."""
    if shutil.which("openssl") is None:
        return "openssl not installed: certificate/key match not checked"
    rc = _openssl(["x509", "-noout", "-pubkey", "-in", cert])
    if rc.returncode:
        raise InputError("--cert %s: openssl cannot read it: %s"
                         % (cert, (rc.stderr.strip().splitlines() or ["?"])[0]))
    rk = _openssl(["pkey", "-pubout", "-passin", "pass:", "-in", key])
    if rk.returncode:
        raise InputError("--key %s: openssl cannot read it: %s"
                         % (key, (rk.stderr.strip().splitlines() or ["?"])[0]))
    if rc.stdout.strip() != rk.stdout.strip():
        raise InputError("--key %s does not belong to --cert %s (different public keys)"
                         % (key, cert))
    return "certificate and key match"


def expired(path):
    """True when the (first) certificate in path has expired, None when unknown."""
    if shutil.which("openssl") is None:
        return None
    r = _openssl(["x509", "-noout", "-checkend", "0", "-in", path])
    if r.returncode not in (0, 1):
        return None
    return r.returncode == 1


def build_profile(kind, ctx, names, client):
    """The atmq.tls profile dict for --profile (None for plain)."""
    if kind == "plain":
        return None
    if kind == "aws":
        p = tls.aws_iot(cacert=names["cacert"], clientcert=names["clientcert"],
                        clientkey=names["clientkey"], ssl_ctx=ctx)
    else:
        p = tls.mosquitto_tls(cacert=names["cacert"], ssl_ctx=ctx)
        if client:
            p["clientcert"], p["clientkey"], p["authmode"] = (
                names["clientcert"], names["clientkey"], 2)
    tls.normalize(p)
    return p


def plan(a):
    """Check every input; returns (board dict, [CertFile], profile, notes)."""
    if a.profile == "plain":
        if a.ca or a.cert or a.key:
            raise InputError("--profile plain uses no TLS: give no --ca/--cert/--key")
    elif not a.ca:
        raise InputError("--profile %s needs --ca (the root CA that signed the broker's "
                         "certificate)" % a.profile)
    if (a.cert is None) != (a.key is None):
        raise InputError("--cert and --key go together")
    if a.profile == "aws" and not a.cert:
        raise InputError("--profile aws is mutual TLS: give --cert and --key")
    if not 0 <= a.ctx <= 9:
        raise InputError("--ctx %d: SSL contexts are 0..9 (manual 17.2.1)" % a.ctx)
    try:
        bp = boardarg.resolve(a.board)  # a path, or a name in boards/ (did-you-mean)
        board = boardmod.load(bp)
    except ConfigError as e:  # the file is there, a key in it is wrong
        raise InputError("--board %s: %s" % (a.board, e)) from None
    except ValueError as e:  # neither a file nor a name in boards/
        raise InputError(str(e)) from None
    names = {"cacert": a.ca_name, "clientcert": a.cert_name, "clientkey": a.key_name}
    for role, n in names.items():
        try:
            tls.check_name(n, _OPTION[role] + "-name")
        except ConfigError as e:
            raise InputError(str(e)) from None
    if len(set(names.values())) != 3:
        raise InputError("the modem file names must differ: %s" % ", ".join(names.values()))
    files = []
    for role, path in (("cacert", a.ca), ("clientcert", a.cert), ("clientkey", a.key)):
        if path:
            files.append(CertFile(role, path, names[role]))
    for f in files:
        check_file(f)
    notes = []
    if a.cert:
        notes.append(check_pair(a.cert, a.key))
    for f in files:
        if f.role != "clientkey" and expired(f.path):
            notes.append("warning: %s %s has expired (the broker will refuse it; the modem "
                         "only checks with ignorelocaltime 0)" % (_OPTION[f.role], f.path))
    try:
        profile = build_profile(a.profile, a.ctx, names, bool(a.cert))
    except ConfigError as e:
        raise InputError(str(e)) from None
    return board, files, profile, notes


# ---- the board --------------------------------------------------------------------------

def device_script(params, folder):
    """provision_dev.py plus the call with its parameters, as a file for mpremote run."""
    with open(DEVICE_SCRIPT) as f:
        src = f.read()
    path = os.path.join(folder, "provision_run.py")
    with open(path, "w") as f:
        f.write(src + "\nmain(%r)\n" % json.dumps(params))
    return path


def mpremote_argv(port, resume, files, script, mpremote=None):
    argv = [mpremote or venv_tool("mpremote"), "connect", port]
    if resume:
        argv.append("resume")
    for f in files:
        argv += ["fs", "cp", f.path, ":" + f.tmp, "+"]
    return argv + ["run", script]


def parse_results(stdout):
    """The device's ``PROV {json}`` lines, in order."""
    out = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("PROV "):
            try:
                out.append(json.loads(line[5:]))
            except ValueError:
                out.append({"step": "garbled", "line": line[:200]})
    return out


def run_board(port, resume, files, params, timeout, mpremote=None):
    work = tempfile.mkdtemp(prefix="provision-")
    try:
        script = device_script(params, work)
        argv = mpremote_argv(port, resume, files, script, mpremote)
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DeviceError("mpremote gave no result within %.0f s" % timeout) from None
        except OSError as e:
            raise DeviceError("cannot run mpremote: %s" % e) from None
        return r.returncode, parse_results(r.stdout), r.stdout, r.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)


def remove_tmp(port, resume, files, mpremote=None):
    """Delete the temporary certificate copies on the board (after a failed run)."""
    script = ("import os\nfor p in %r:\n try:\n  os.remove(p)\n except OSError:\n  pass\n"
              % ([f.tmp for f in files],))
    argv = [mpremote or venv_tool("mpremote"), "connect", port]
    if resume:
        argv.append("resume")
    try:
        return subprocess.run(argv + ["exec", script], capture_output=True, text=True,
                              timeout=60).returncode == 0
    except (subprocess.TimeoutExpired, OSError):
        return False


def explain(err):
    """One paragraph for an ``error`` line: the step, the manual's code and meaning."""
    step = err.get("at", "?")
    msg = err.get("message", "")
    kind = err.get("kind")
    s = "%s failed: %s" % (step, msg)  # the message is errtab's "KIND code: meaning"
    hint = STEP_HINTS.get(step)
    if err.get("type") == "FirmwareError":  # its message already names the remedy
        hint = None
    if hint and (kind in (None, "AT") or step in ("link", "open")):
        s += "; " + hint
    return s


def compare_readback(profile, fields):
    """Mismatches between the profile and the AT+CSSLCFG=<ctx> answer (list of text)."""
    p = tls.normalize(profile)
    want = {"sslversion": p["sslversion"], "authmode": p["authmode"],
            "ignorelocaltime": p["ignorelocaltime"], "negotiatetime": p["negotiatetime"],
            "cacert": p["cacert"], "clientcert": p["clientcert"], "clientkey": p["clientkey"],
            "ignorecertcn": p["ignorecertcn"]}
    if p["sni"] is not None:
        want["sni"] = 0 if p["sni"] is False else 1
    bad = []
    # the flags after the file names only where the answer has the manual's full 13 fields
    n = len(fields) if len(fields) >= 13 else min(len(fields), 8)
    for i, key in enumerate(READBACK_FIELDS):
        if i >= n or key not in want or want[key] is None:
            continue
        got, w = fields[i], want[key]
        if isinstance(w, int) and not isinstance(w, bool):
            ok = got.strip().isdigit() and int(got) == w
        else:
            ok = got == w
        if not ok:
            bad.append("%s: modem has %r, profile wants %r" % (key, got, w))
    return bad


def report(results, log):
    """Print the steps; returns (ok, error lines)."""
    errors = []
    done = None
    for r in results:
        st = r.get("step")
        if st == "link":
            log("link: modem %s, revision %s%s" % (r.get("model"), r.get("revision"),
                                                   ", powered on" if r.get("powered_on")
                                                   else ""))
        elif st == "download":
            log("download %s (%s): %d bytes OK" % (r["name"], r["role"], r["bytes"]))
        elif st == "list":
            log("list: %s" % (", ".join(r["certs"]) or "(none)"))
            if r.get("missing"):
                errors.append("list: AT+CCERTLIST (manual 17.2.3) does not show %s after "
                              "the download" % ", ".join(r["missing"]))
        elif st == "configure":
            prof = r["profile"]
            log("configure ctx %d: authmode %s, sslversion %s, cacert %s, clientcert %s, "
                "clientkey %s, sni %s" % (r["ctx"], prof["authmode"], prof["sslversion"],
                                          prof["cacert"], prof["clientcert"],
                                          prof["clientkey"], prof["sni"]))
        elif st == "readback":
            if r.get("ok"):
                log("readback ctx %d: %s" % (r["ctx"], ",".join(r["fields"])))
            else:
                log("readback: %s (settings not verified)" % r.get("message"))
        elif st == "error":
            errors.append(explain(r))
        elif st == "cleanup":
            if r.get("left"):
                errors.append("cleanup: temporary copies still on the board: %s"
                              % ", ".join(r["left"]))
        elif st == "done":
            done = r
        elif st == "garbled":
            errors.append("unreadable result line: %s" % r.get("line"))
    return bool(done and done.get("ok")) and not errors, errors


# ---- CLI --------------------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(
        description="Upload TLS certificates to the modem of a board (AT+CCERTDOWN through "
                    "mpremote), verify them (AT+CCERTLIST) and set the SSL context "
                    "(AT+CSSLCFG). Files are checked on the host first.")
    p.add_argument("--port", help="mpremote connect string: /dev/ttyUSB0, "
                   "socket://127.0.0.1:PORT (the unix port via replrelay.py), rfc2217://...")
    p.add_argument("--board", required=True, help="boards/NAME.json or NAME")
    p.add_argument("--profile", required=True, choices=PROFILES)
    p.add_argument("--ca", help="root CA (PEM) that signed the broker's certificate")
    p.add_argument("--cert", help="client certificate (PEM), for mutual TLS")
    p.add_argument("--key", help="client private key (PEM, unencrypted)")
    p.add_argument("--ctx", type=int, default=0, help="SSL context 0..9 (default 0)")
    p.add_argument("--ca-name", help="file name on the modem (default: the profile's, "
                   "cacert.pem for aws, ca.pem for mosquitto-tls)")
    p.add_argument("--cert-name", default="clientcert.pem", help="default clientcert.pem")
    p.add_argument("--key-name", default="clientkey.pem", help="default clientkey.pem")
    p.add_argument("--modem", help="host boards: modem device overriding the board's "
                   "uart.device (tcp:HOST:PORT or a pty path)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the files and print the plan; do not touch the board")
    p.add_argument("--resume", dest="resume", action="store_true", default=None,
                   help="no soft reset on connect (default for socket:// and rfc2217://)")
    p.add_argument("--no-resume", dest="resume", action="store_false")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds for the whole board session (default 600)")
    p.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    a = p.parse_args(argv)
    if a.ca_name is None:
        a.ca_name = "cacert.pem" if a.profile == "aws" else "ca.pem"
    if not a.port and not a.dry_run:
        p.error("--port is required (or use --dry-run)")
    log = (lambda s: sys.stderr.write(s + "\n")) if a.json else print
    summary = {"ok": False, "profile": a.profile, "ctx": a.ctx, "files": [], "errors": []}

    def finish(code, errors=()):
        summary["errors"] = list(errors)
        summary["ok"] = code == EXIT_OK
        for e in errors:
            sys.stderr.write("provision: %s\n" % e)
        if a.json:
            print(json.dumps(summary))
        return code

    try:
        board, files, profile, notes = plan(a)
    except InputError as e:
        return finish(EXIT_INPUT, [str(e)])
    summary["files"] = [{"role": f.role, "path": f.path, "name": f.name, "bytes": f.size}
                        for f in files]
    for f in files:
        log("%s %s -> modem %s (%d bytes)" % (_OPTION[f.role], f.path, f.name, f.size))
    for n in notes:
        log(n)
    log("profile %s, ssl context %d: %s" % (a.profile, a.ctx, "no TLS" if profile is None else
                                            json.dumps(tls.normalize(profile), sort_keys=True)))
    if a.dry_run:
        log("dry run: nothing sent")
        return finish(EXIT_OK)
    resume = a.resume
    if resume is None:
        resume = a.port.startswith(("socket://", "rfc2217://"))
    params = {"board": board, "modem": a.modem, "ctx": a.ctx, "profile": profile,
              "boot_ms": board["timing"]["boot_ms"],
              "files": [{"role": f.role, "name": f.name, "tmp": f.tmp} for f in files]}
    try:
        rc, results, out, err = run_board(a.port, resume, files, params, a.timeout)
    except DeviceError as e:
        cleaned = remove_tmp(a.port, resume, files)
        return finish(EXIT_DEVICE, [str(e)] + ([] if cleaned or not files else
                                              ["could not confirm that the temporary "
                                               "copies were deleted from the board"]))
    summary["steps"] = results
    ok, errors = report(results, log)
    if profile is not None and ok:
        for r in results:
            if r.get("step") == "readback" and r.get("ok"):
                bad = compare_readback(profile, r["fields"])
                errors += ["readback: " + b for b in bad]
                ok = not bad
    if not results:  # the script never ran (no atmq/tlog on the board, mpremote failed)
        tail = "\n".join((err.strip() or out.strip()).splitlines()[-6:])
        errors.append("no result from the board (mpremote rc %d): %s%s" % (
            rc, tail, "\n(deploy lib/ and firmware/ first: tools/deploy.py)"
            if "ImportError" in tail else ""))
    if not any(r.get("step") == "cleanup" and r.get("ok") for r in results) and files:
        if not remove_tmp(a.port, resume, files):
            errors.append("could not confirm that the temporary copies were deleted "
                          "from the board")
    if ok and not errors:
        log("provisioned: %d file(s)%s" % (len(files), "" if profile is None else
                                             ", ssl context %d set and read back" % a.ctx))
        return finish(EXIT_OK)
    return finish(EXIT_DEVICE, errors or ["the board reported no success"])


if __name__ == "__main__":
    sys.exit(main())
