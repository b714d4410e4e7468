#!/usr/bin/env python3
"""A small CRI client (runtime.v1) for the engine tests, over grpcio from Debian
(python3-grpcio). The few messages used are encoded and decoded by hand against the field
numbers of k8s.io/cri-api's api.proto: no generated stubs, so nothing to compile and no
protoc/api.proto to fetch (neither is in Debian 12 nor on crates.io's offline cache here).

  cri.py SOCKET scenario HANDLER IMAGE      runs one pod through the CRI, prints JSON
  cri.py SOCKET sandboxes                   prints the sandboxes' ids and states as JSON
"""
import json
import sys
import time

import grpc


# ---- protobuf wire format (just what CRI's messages here need) ----

def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, value):
    """Encodes one field: int -> varint, str/bytes -> length-delimited, list -> repeated."""
    if isinstance(value, list):
        return b"".join(field(num, v) for v in value)
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return varint(num << 3 | 0) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def msg(*fields):
    return b"".join(field(n, v) for n, v in fields if v is not None)


def kv_map(num, d):
    """A map<string,string> field: repeated entries {1: key, 2: value}."""
    return b"".join(field(num, msg((1, k), (2, v))) for k, v in d.items())


def decode(buf):
    """Decodes a message into {field: [values]} (varints as int, the rest as bytes)."""
    out = {}
    i = 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 2:
            n, i = read_varint(buf, i)
            v = buf[i:i + n]
            i += n
        elif wt == 1:
            v = buf[i:i + 8]
            i += 8
        elif wt == 5:
            v = buf[i:i + 4]
            i += 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


def read_varint(buf, i):
    shift = n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def first(d, num, default=b""):
    return d.get(num, [default])[0]


# ---- the CRI calls ----

class Cri:
    def __init__(self, socket):
        self.ch = grpc.insecure_channel("unix://" + socket)

    def call(self, service, method, body, timeout=60):
        f = self.ch.unary_unary("/runtime.v1.%s/%s" % (service, method))
        return decode(f(body, timeout=timeout))

    def rt(self, method, body, timeout=60):
        return self.call("RuntimeService", method, body, timeout)


def sandbox_config(name, uid):
    # NamespaceOption: network NODE (2): no CNI plugin is configured for this containerd.
    ns_opts = msg((1, 2), (2, 0), (3, 0))
    sec = msg((1, ns_opts))
    linux = msg((2, sec))
    return msg(
        (1, msg((1, name), (2, uid), (3, "default"), (4, 0))),  # metadata
        # no hostname: a host-network sandbox shares the host's UTS namespace too
        (8, linux),
    )


def scenario(socket, handler, image):
    cri = Cri(socket)
    res = {}
    v = cri.rt("Version", msg((1, "v1")))
    res["runtime"] = first(v, 2).decode() + " " + first(v, 3).decode()
    name = "cri-" + handler
    sb_cfg = sandbox_config(name, "uid-" + handler + "-%d" % int(time.time()))
    r = cri.rt("RunPodSandbox", msg((1, sb_cfg), (2, handler)), timeout=120)
    sb = first(r, 1).decode()
    res["sandbox"] = sb
    st = cri.rt("PodSandboxStatus", msg((1, sb), (2, True)))
    status = decode(first(st, 1))
    res["sandbox_state"] = first(status, 3, 0)  # 0 = SANDBOX_READY
    res["sandbox_handler"] = first(status, 9).decode()
    cfg = msg(
        (1, msg((1, "main"), (2, 0))),
        (2, msg((1, image))),
        (3, ["sh", "-c", "echo started; exec sleep 600"]),
        (11, "main.log"),
    )
    r = cri.rt("CreateContainer", msg((1, sb), (2, cfg), (3, sb_cfg)), timeout=120)
    cid = first(r, 1).decode()
    res["container"] = cid
    cri.rt("StartContainer", msg((1, cid)))
    r = cri.rt("ExecSync", msg((1, cid), (2, ["sh", "-c", "echo out; echo err >&2; exit 7"]), (3, 30)))
    res["exec"] = {
        "stdout": first(r, 1).decode(),
        "stderr": first(r, 2).decode(),
        "exit_code": first(r, 3, 0),
    }
    # The pod shares one PID namespace (pid POD): the sandbox's pause is its pid 1.
    r = cri.rt("ExecSync", msg((1, cid), (2, ["ps", "-o", "pid,args"]), (3, 30)))
    res["ps"] = first(r, 1).decode()
    cs = cri.rt("ContainerStatus", msg((1, cid)))
    res["container_state"] = first(decode(first(cs, 1)), 3, 0)  # 1 = CONTAINER_RUNNING
    cri.rt("StopContainer", msg((1, cid), (2, 2)), timeout=60)
    cs = cri.rt("ContainerStatus", msg((1, cid)))
    status = decode(first(cs, 1))
    res["stopped_state"] = first(status, 3, 0)  # 2 = CONTAINER_EXITED
    res["stopped_exit_code"] = first(status, 7, 0)
    cri.rt("StopPodSandbox", msg((1, sb)), timeout=60)
    cri.rt("RemovePodSandbox", msg((1, sb)), timeout=60)
    res["sandboxes_after"] = sandboxes(cri)
    return res


def sandboxes(cri):
    r = cri.rt("ListPodSandbox", b"")
    return [first(decode(item), 1).decode() for item in r.get(1, [])]


def main():
    sock, cmd = sys.argv[1], sys.argv[2]
    try:
        if cmd == "scenario":
            out = scenario(sock, sys.argv[3], sys.argv[4])
        elif cmd == "sandboxes":
            out = sandboxes(Cri(sock))
        else:
            raise SystemExit("unknown command " + cmd)
    except grpc.RpcError as e:
        print(json.dumps({"error": "%s: %s" % (e.code(), e.details())}))
        sys.exit(1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
