# A PostgreSQL login probe for a container with only python3-minimal: connects to
# $PGHOST:$PGPORT as $PGUSER (password $PGPASSWORD, SCRAM-SHA-256) to database $PGDATABASE, runs
# "SELECT current_database()", and prints "OK <database>" or "ERROR <sqlstate> <message>".
import base64, hashlib, os, socket, struct, sys

def hmac(key, msg):
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    outer = bytes(k ^ 0x5C for k in key)
    inner = bytes(k ^ 0x36 for k in key)
    return hashlib.sha256(outer + hashlib.sha256(inner + msg).digest()).digest()

def send(sock, kind, body):
    sock.sendall(kind + struct.pack("!I", len(body) + 4) + body)

def recv(sock):
    head = b""
    while len(head) < 5:
        chunk = sock.recv(5 - len(head))
        if not chunk:
            raise EOFError("server closed the connection")
        head += chunk
    kind, size = head[:1], struct.unpack("!I", head[1:])[0]
    body = b""
    while len(body) < size - 4:
        chunk = sock.recv(size - 4 - len(body))
        if not chunk:
            raise EOFError("server closed the connection")
        body += chunk
    return kind, body

def error(body):
    fields = dict((f[:1], f[1:].decode()) for f in body.split(b"\0") if f)
    return "ERROR %s %s" % (fields.get(b"C", "?"), fields.get(b"M", "?"))

def main():
    env = os.environ
    sock = socket.create_connection((env["PGHOST"], int(env["PGPORT"])), timeout=10)
    params = b"user\0" + env["PGUSER"].encode() + b"\0database\0" + env["PGDATABASE"].encode() + b"\0\0"
    body = struct.pack("!I", 196608) + params
    sock.sendall(struct.pack("!I", len(body) + 4) + body)
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = "n=,r=" + nonce
    auth = None
    while True:
        kind, body = recv(sock)
        if kind == b"E":
            return error(body)
        if kind == b"R":
            code = struct.unpack("!I", body[:4])[0]
            if code == 10:
                msg = ("n,," + first_bare).encode()
                send(sock, b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(msg)) + msg)
            elif code == 11:
                server_first = body[4:].decode()
                attrs = dict(a.split("=", 1) for a in server_first.split(","))
                salted = hashlib.pbkdf2_hmac("sha256", env["PGPASSWORD"].encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
                client_key = hmac(salted, b"Client Key")
                final_bare = "c=biws,r=" + attrs["r"]
                auth = (first_bare + "," + server_first + "," + final_bare).encode()
                signature = hmac(hashlib.sha256(client_key).digest(), auth)
                proof = bytes(a ^ b for a, b in zip(client_key, signature))
                send(sock, b"p", (final_bare + ",p=" + base64.b64encode(proof).decode()).encode())
            elif code in (0, 12):
                pass
            else:
                return "ERROR auth-%d unsupported" % code
        if kind == b"Z":
            break
    send(sock, b"Q", b"SELECT current_database()\0")
    row = None
    while True:
        kind, body = recv(sock)
        if kind == b"E":
            return error(body)
        if kind == b"D":
            size = struct.unpack("!I", body[2:6])[0]
            row = body[6:6 + size].decode()
        if kind == b"Z":
            return "OK %s" % row

print(main())
sys.stdout.flush()
