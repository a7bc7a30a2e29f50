"""One lab node's IPFS daemon (npm `ipfs` = js-ipfs, kubo's RPC API): init the repo once, then exec the daemon.

    python -m qflow_lab.ipfsd --repo DIR --ip 127.0.1.i [--jsipfs PATH] [--node PATH]

Run by supervisord as program ``ipfs-qflow-node-i``; the daemon replaces this process (exec), so supervisord's TERM
reaches it directly. The repo is a dial-only, offline node: no swarm listeners (js-ipfs 0.66 hangs with any, see
lab/README.md), no bootstrap peers, no MDNS, no preload; RPC API, gateway and gRPC only on the node's IP.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

from . import render

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_JSIPFS = os.path.join(os.path.dirname(HERE), "ipfs", "node_modules", "ipfs", "src", "cli.js")


def init_repo(repo, ip, node_bin, jsipfs, env):
    """`jsipfs init --emptyRepo --profile test` with the lab's addresses, once (a repo with a config is kept)."""
    if os.path.exists(os.path.join(repo, "config")):
        return False
    os.makedirs(os.path.dirname(repo) or ".", exist_ok=True)
    shutil.rmtree(repo, ignore_errors=True)  # a half-initialised repo from an interrupted init
    init_cfg = repo + ".init.json"
    with open(init_cfg, "w") as fh:
        json.dump(render.ipfs_init_config(ip), fh, indent=1)
    p = subprocess.run([node_bin, jsipfs, "init", "--emptyRepo", "--profile", "test", "--defaultConfig", init_cfg],
                       env=env, capture_output=True, text=True, timeout=120)
    os.remove(init_cfg)
    if p.returncode != 0:
        shutil.rmtree(repo, ignore_errors=True)
        raise SystemExit("ipfs init of %s failed (exit %d): %s" % (repo, p.returncode, (p.stdout + p.stderr).strip()))
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m qflow_lab.ipfsd", description=__doc__.splitlines()[0])
    ap.add_argument("--repo", required=True, help="IPFS repo dir (IPFS_PATH)")
    ap.add_argument("--ip", required=True, help="address for the RPC API, gateway and gRPC")
    ap.add_argument("--jsipfs", default=DEFAULT_JSIPFS, help="js-ipfs CLI (node_modules/ipfs/src/cli.js)")
    ap.add_argument("--node", default=shutil.which("node") or "node", help="Node.js binary")
    args = ap.parse_args(argv)
    if not os.path.exists(args.jsipfs):
        raise SystemExit("js-ipfs not installed at %s: run `make setup` (npm ci in lab/ipfs)" % args.jsipfs)
    env = dict(os.environ, IPFS_PATH=args.repo, NO_UPDATE_NOTIFIER="1")
    if init_repo(args.repo, args.ip, args.node, args.jsipfs, env):
        sys.stderr.write("initialised IPFS repo %s\n" % args.repo)
        sys.stderr.flush()
    os.execvpe(args.node, [args.node, args.jsipfs, "daemon", "--enable-preload=false"], env)


if __name__ == "__main__":
    main()
