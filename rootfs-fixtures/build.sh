#!/usr/bin/env bash
# Builds the test images as OCI image layouts under rootfs-fixtures/out/ from Debian
# packages (apt's mirror; no public container registry needed):
#   out/busybox   docker.io/library/busybox:1.30   busybox-static, Cmd ["sh"]
#   out/nginx     docker.io/library/nginx:1.17.1   busybox layer + Debian's nginx and the
#                                                  libraries it links, official config
#   out/debian    docker.io/library/debian:latest  debootstrap --variant=minbase bookworm
# Each image is rebuilt only when missing or when this script or mkoci.py changed.
# Usage: build.sh [busybox|nginx|debian]...   (default: all). Needs root.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${FIXTURES_OUT:-$HERE/out}
WORK=$OUT/work
PY=$(command -v /usr/bin/python3 || command -v python3)
SUITE=${DEBIAN_SUITE:-bookworm}
mirror() {
    local m=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    elif [ -f /etc/apt/sources.list ]; then
        m=$(awk '$1=="deb" {print $2; exit}' /etc/apt/sources.list)
    fi
    echo "${DEBIAN_MIRROR:-${m:-http://deb.debian.org/debian}}"
}
# Bump an image's revision when its recipe below changes; mkoci.py changes rebuild all.
declare -A REV=([busybox]=2 [nginx]=2 [debian]=1)
MKOCI_SUM=$(sha256sum "$HERE/mkoci.py" | cut -c1-16)

[ "$(id -u)" = 0 ] || { echo "build.sh: must run as root (ownership, device nodes)" >&2; exit 1; }
mkdir -p "$OUT" "$WORK/debs"
# One builder at a time (tests of several helpers may ask for fixtures at once).
exec 9>"$OUT/.lock"
flock 9

stamp() { echo "${REV[$1]}-$MKOCI_SUM"; }
fresh() { # fresh NAME: true when out/NAME is built by this version of its recipe
    [ -f "$OUT/$1/index.json" ] && [ "$(cat "$OUT/$1.stamp" 2>/dev/null)" = "$(stamp "$1")" ]
}

fetch_debs() { # fetch_debs PKG...: into $WORK/debs (apt-get download, cached)
    local missing=()
    for p in "$@"; do
        ls "$WORK/debs/${p}_"*.deb >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        (cd "$WORK/debs" && apt-get download "${missing[@]}" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
        for p in "${missing[@]}"; do
            ls "$WORK/debs/${p}_"*.deb >/dev/null 2>&1 || {
                echo "build.sh: could not download $p (apt-get update needed?)" >&2; exit 1; }
        done
    fi
}

extract() { # extract DEST PKG...
    local dest=$1; shift
    mkdir -p "$dest"
    for p in "$@"; do dpkg-deb -x "$(ls "$WORK/debs/${p}_"*.deb | head -1)" "$dest"; done
}

base_files() { # base_files ROOT: the directories and accounts every image has
    local r=$1
    mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,var/spool/mail,var/www,dev,proc,sys,run,tmp}
    chmod 1777 "$r/tmp"; chmod 700 "$r/root"
    cat > "$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
    cat > "$r/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
tty:x:5:
www-data:x:33:
nogroup:x:65534:
EOF
    echo "root:*:19000:0:99999:7:::" > "$r/etc/shadow"; chmod 640 "$r/etc/shadow"
}

install_busybox() { # install_busybox ROOT: /bin/busybox plus a hard link per applet (as the official image)
    local r=$1
    extract "$WORK/busybox-deb" busybox-static
    install -m 0755 "$WORK/busybox-deb/bin/busybox" "$r/bin/busybox"
    local applet
    for applet in $("$r/bin/busybox" --list-full); do
        [ "$applet" = bin/busybox ] && continue
        mkdir -p "$r/$(dirname "$applet")"
        [ -e "$r/$applet" ] || [ -L "$r/$applet" ] || ln "$r/bin/busybox" "$r/$applet"
    done
}

build_busybox() {
    fresh busybox && { echo "busybox: up to date"; return; }
    fetch_debs busybox-static
    local r=$WORK/busybox-rootfs
    rm -rf "$r"; mkdir -p "$r"
    base_files "$r"
    install_busybox "$r"
    "$PY" "$HERE/mkoci.py" --out "$OUT/busybox" --name docker.io/library/busybox:1.30 \
        --layer "$r" --cmd '["sh"]' --created 2019-07-01T00:00:00Z
    stamp busybox > "$OUT/busybox.stamp"
}

build_nginx() {
    fresh nginx && { echo "nginx: up to date"; return; }
    fetch_debs busybox-static nginx nginx-common libc6 libcrypt1 libpcre2-8-0 libssl3 zlib1g
    # Layer 1: the busybox base (so /bin/sh, cat, etc. exist for exec hooks and probes).
    local base=$WORK/nginx-base r=$WORK/nginx-rootfs stage=$WORK/nginx-stage
    rm -rf "$base" "$r" "$stage"; mkdir -p "$base" "$r"
    base_files "$base"
    install_busybox "$base"
    echo "nginx:x:101:101:nginx user,,,:/nonexistent:/bin/false" >> "$base/etc/passwd"
    echo "nginx:x:101:" >> "$base/etc/group"
    # Layer 2: nginx and exactly the shared libraries it links (as the dynamic loader lists them).
    extract "$stage" nginx nginx-common libc6 libcrypt1 libpcre2-8-0 libssl3 zlib1g
    mkdir -p "$r/usr/sbin" "$r/etc/nginx/conf.d" "$r/usr/share/nginx/html" \
        "$r/var/log/nginx" "$r/var/lib/nginx" "$r/var/cache/nginx" "$r/var/run"
    install -m 0755 "$stage/usr/sbin/nginx" "$r/usr/sbin/nginx"
    local ldso lib
    ldso=$(cd "$stage" && ls lib64/ld-linux-x86-64.so.2 2>/dev/null || ls usr/lib64/ld-linux-x86-64.so.2)
    for lib in $(chroot "$stage" "/$ldso" --list /usr/sbin/nginx | awk '/=>/ {print $3} !/=>/ {print $1}' | grep '^/'); do
        mkdir -p "$r/$(dirname "$lib")"
        cp -L "$stage/$lib" "$r/$lib"
    done
    # The loader itself under its canonical name.
    mkdir -p "$r/lib64"; cp -L "$stage/$ldso" "$r/lib64/ld-linux-x86-64.so.2"
    cp "$stage/etc/nginx/mime.types" "$r/etc/nginx/mime.types"
    # /var/run -> /run would clash with the base's /run dir: make the pid dir real.
    rmdir "$r/var/run"; ln -s /run "$r/var/run"
    ln -s /dev/stdout "$r/var/log/nginx/access.log"
    ln -s /dev/stderr "$r/var/log/nginx/error.log"
    cat > "$r/etc/nginx/nginx.conf" <<'EOF'

user  nginx;
worker_processes  1;

error_log  /var/log/nginx/error.log warn;
pid        /var/run/nginx.pid;


events {
    worker_connections  1024;
}


http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;

    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';

    access_log  /var/log/nginx/access.log  main;

    sendfile        on;
    #tcp_nopush     on;

    keepalive_timeout  65;

    #gzip  on;

    include /etc/nginx/conf.d/*.conf;
}
EOF
    cat > "$r/etc/nginx/conf.d/default.conf" <<'EOF'
server {
    listen       80;
    server_name  localhost;

    #charset koi8-r;
    #access_log  /var/log/nginx/host.access.log  main;

    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }

    #error_page  404              /404.html;

    # redirect server error pages to the static page /50x.html
    #
    error_page   500 502 503 504  /50x.html;
    location = /50x.html {
        root   /usr/share/nginx/html;
    }
}
EOF
    cat > "$r/usr/share/nginx/html/index.html" <<'EOF'
<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
    body {
        width: 35em;
        margin: 0 auto;
        font-family: Tahoma, Verdana, Arial, sans-serif;
    }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href="http://nginx.org/">nginx.org</a>.<br/>
Commercial support is available at
<a href="http://nginx.com/">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
EOF
    cat > "$r/usr/share/nginx/html/50x.html" <<'EOF'
<!DOCTYPE html>
<html>
<head>
<title>Error</title>
<style>
    body {
        width: 35em;
        margin: 0 auto;
        font-family: Tahoma, Verdana, Arial, sans-serif;
    }
</style>
</head>
<body>
<h1>An error occurred.</h1>
<p>Sorry, the page you are looking for is currently unavailable.<br/>
Please try again later.</p>
<p>If you are the system administrator of this resource then you should check
the error log for details.</p>
<p><em>Faithfully yours, nginx.</em></p>
</body>
</html>
EOF
    # Sanity: the binary runs against exactly these libraries.
    local check=$WORK/nginx-check
    rm -rf "$check"; mkdir -p "$check"; cp -a "$base/." "$check/"; cp -a "$r/." "$check/"
    chroot "$check" /usr/sbin/nginx -t >/dev/null 2>&1 || {
        echo "build.sh: nginx -t fails in the assembled rootfs:" >&2
        chroot "$check" /usr/sbin/nginx -t >&2 || true; exit 1; }
    rm -rf "$check"
    # STOPSIGNAL SIGTERM as the official 1.17.1 image (SIGQUIT came with 1.19.x).
    "$PY" "$HERE/mkoci.py" --out "$OUT/nginx" --name docker.io/library/nginx:1.17.1 \
        --layer "$base" --layer "$r" --created 2019-07-01T00:00:00Z \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env NGINX_VERSION=1.17.1 --env NJS_VERSION=0.3.3 --env PKG_RELEASE=1~stretch \
        --cmd '["nginx","-g","daemon off;"]' --expose 80/tcp --stop-signal SIGTERM
    stamp nginx > "$OUT/nginx.stamp"
}

build_debian() {
    fresh debian && { echo "debian: up to date"; return; }
    command -v debootstrap >/dev/null || { echo "build.sh: debootstrap is not installed" >&2; exit 1; }
    local r=$WORK/debian-rootfs
    rm -rf "$r"
    debootstrap --variant=minbase "$SUITE" "$r" "$(mirror)" >"$WORK/debootstrap.log" 2>&1 || {
        echo "build.sh: debootstrap failed, see $WORK/debootstrap.log" >&2; tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
    rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r"/var/log/*.log \
        "$r"/var/cache/ldconfig/aux-cache
    : > "$r/etc/resolv.conf"; : > "$r/etc/hostname"
    "$PY" "$HERE/mkoci.py" --out "$OUT/debian" --name docker.io/library/debian:latest \
        --layer "$r" --cmd '["bash"]' --created 2019-07-01T00:00:00Z
    stamp debian > "$OUT/debian.stamp"
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(busybox nginx debian)
for t in "${targets[@]}"; do
    case $t in
        busybox) build_busybox ;;
        nginx) build_nginx ;;
        debian) build_debian ;;
        *) echo "build.sh: unknown image $t (busybox, nginx, debian)" >&2; exit 2 ;;
    esac
done
