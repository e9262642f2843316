# shellcheck shell=bash
# Shared by scripts/install and scripts/package-deb: lays out what edge-gateway installs in a
# staging tree. Sourced; expects `set -euo pipefail`, $prog (for messages) and $repo (the checkout).
#
# Layout (prefix /usr):
#   /usr/bin/edge-gateway                       the daemon; when it is dynamically linked against
#                                               the Swift runtime, RUNPATH $ORIGIN/../lib/edge-gateway
#   /usr/lib/edge-gateway/*.so                  that runtime (libswiftCore, Foundation, ...), copied
#                                               from the toolchain (only what the binary needs)
#   /usr/lib/edge-gateway/setup-broker          creates the dynamic-security state and credentials
#   /lib/systemd/system/edge-gateway.service    the unit (ExecStart follows the prefix)
#   /lib/systemd/system/edge-gateway.service.d/credentials.conf   EnvironmentFile=/etc/edge-gateway/secrets.env
#   /etc/edge-gateway/gateway.yaml              the sample configuration
#   /etc/mosquitto/conf.d/edge-gateway.conf     the hub broker snippet, plugin path for the architecture

eg_die() { echo "$prog: error: $*" >&2; exit 1; }
eg_log() { echo "$prog: $*"; }

# Debian architecture -> multiarch triplet.
eg_multiarch() {
    case "$1" in
        amd64) echo x86_64-linux-gnu ;;
        arm64) echo aarch64-linux-gnu ;;
        armhf) echo arm-linux-gnueabihf ;;
        *) eg_die "unsupported architecture '$1' (amd64, arm64 or armhf)" ;;
    esac
}

# The Debian architecture of an ELF file.
eg_binary_arch() {
    local machine class
    machine=$(LC_ALL=C readelf -h "$1" 2>/dev/null | sed -n 's/^ *Machine: *//p')
    class=$(LC_ALL=C readelf -h "$1" 2>/dev/null | sed -n 's/^ *Class: *//p')
    case "$machine" in
        *X86-64*) echo amd64 ;;
        *AArch64*) echo arm64 ;;
        ARM) [[ "$class" == ELF32 ]] && echo armhf ;;
        *) eg_die "$1: not an ELF executable for amd64, arm64 or armhf (machine '$machine')" ;;
    esac
}

# NEEDED entries and RUNPATH/RPATH of an ELF file.
eg_needed() { LC_ALL=C readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'; }
eg_runpath() { LC_ALL=C readelf -d "$1" | sed -n 's/.*(\(RUNPATH\|RPATH\)).*\[\(.*\)\]$/\2/p' | head -n 1; }

# Directories to take the Swift runtime from: the binary's RUNPATH ($ORIGIN expanded, the
# system's library directories left out) and any given with --swift-libs.
eg_swift_dirs() { # binary extra-dirs...
    local binary=$1 origin dir
    shift
    origin=$(cd "$(dirname "$binary")" && pwd)
    local -a dirs=("$@")
    local -a runpath
    IFS=: read -r -a runpath <<<"$(eg_runpath "$binary")"
    for dir in "${runpath[@]}"; do
        dir=${dir//\$ORIGIN/$origin}
        dir=${dir//\$\{ORIGIN\}/$origin}
        case "$dir" in "" | /lib | /lib/* | /usr/lib | /usr/lib/* | /lib64 | /usr/lib64) continue ;; esac
        if [[ -d "$dir" ]]; then dirs+=("$dir"); fi
    done
    printf '%s\n' "${dirs[@]}"
}

# Libraries the binary needs that are found in those directories, recursively (one path a line).
# Everything else it needs must come from Debian packages (the .deb's Depends).
eg_bundled_libs() { # binary extra-dirs...
    local binary=$1 name dir found
    shift
    local -a dirs queue seen=()
    mapfile -t dirs < <(eg_swift_dirs "$binary" "$@")
    ((${#dirs[@]})) || return 0
    mapfile -t queue < <(eg_needed "$binary")
    while ((${#queue[@]})); do
        name=${queue[0]}
        queue=("${queue[@]:1}")
        [[ " ${seen[*]} " == *" $name "* ]] && continue
        seen+=("$name")
        found=""
        for dir in "${dirs[@]}"; do
            if [[ -e "$dir/$name" ]]; then found=$dir/$name; break; fi
        done
        [[ -n "$found" ]] || continue
        echo "$found"
        mapfile -t -O "${#queue[@]}" queue < <(eg_needed "$found")
    done
}

# Strips a copy in place when the host's strip understands it (a cross build may not be).
eg_strip() {
    local kind=$1 file=$2
    if [[ "$kind" == lib ]]; then
        strip --strip-unneeded "$file" 2>/dev/null || true
    else
        strip "$file" 2>/dev/null || true
    fi
}

# Stages everything under $1.
#   eg_stage DEST BINARY ARCH PREFIX STRIP(0|1) [SWIFT_LIB_DIRS...]
eg_stage() {
    local dest=$1 binary=$2 arch=$3 prefix=$4 strip=$5 multiarch lib
    shift 5
    multiarch=$(eg_multiarch "$arch")
    local libdir=$dest$prefix/lib/edge-gateway
    install -d -m 0755 "$dest$prefix/bin" "$libdir" "$dest/lib/systemd/system/edge-gateway.service.d" \
        "$dest/etc/edge-gateway" "$dest/etc/mosquitto/conf.d"

    install -m 0755 "$binary" "$dest$prefix/bin/edge-gateway"
    if ((strip)); then eg_strip exe "$dest$prefix/bin/edge-gateway"; fi
    local -a libs
    mapfile -t libs < <(eg_bundled_libs "$binary" "$@")
    # Every Swift runtime library asked for must have been found (else the binary would not start).
    local elf name
    for elf in "$binary" "${libs[@]}"; do
        while read -r name; do
            [[ "$name" =~ ^lib(swift|Foundation|_Foundation|dispatch|BlocksRuntime) ]] || continue
            [[ " ${libs[*]##*/} " == *" $name "* ]] ||
                eg_die "$binary needs $name from the Swift runtime, which is not in its RUNPATH ($(eg_runpath "$binary")); give --swift-libs DIR (the toolchain's usr/lib/swift/linux) or build with --static-swift-stdlib"
        done < <(eg_needed "$elf")
    done
    if ((${#libs[@]})); then
        command -v patchelf >/dev/null ||
            eg_die "$binary is linked against the Swift runtime (${libs[0]##*/}, ...), which must go with it; install patchelf (apt-get install patchelf) or build with --static-swift-stdlib"
        for lib in "${libs[@]}"; do
            install -m 0644 "$lib" "$libdir/${lib##*/}"
            if ((strip)); then eg_strip lib "$libdir/${lib##*/}"; fi
        done
        # The runtime's own libraries find each other through their RUNPATH $ORIGIN.
        patchelf --set-rpath '$ORIGIN/../lib/edge-gateway' "$dest$prefix/bin/edge-gateway"
    fi
    EG_BUNDLED_LIBS=("${libs[@]##*/}")

    install -m 0755 "$repo/scripts/packaging/setup-broker" "$libdir/setup-broker"

    sed "s#^ExecStart=/usr/bin/edge-gateway #ExecStart=$prefix/bin/edge-gateway #" \
        "$repo/systemd/edge-gateway.service" >"$dest/lib/systemd/system/edge-gateway.service"
    grep -q "^ExecStart=$prefix/bin/edge-gateway " "$dest/lib/systemd/system/edge-gateway.service" ||
        eg_die "systemd/edge-gateway.service has no 'ExecStart=/usr/bin/edge-gateway ...' line"
    chmod 0644 "$dest/lib/systemd/system/edge-gateway.service"
    install -m 0644 "$repo/systemd/credentials.conf" \
        "$dest/lib/systemd/system/edge-gateway.service.d/credentials.conf"

    install -m 0644 "$repo/config/gateway.yaml" "$dest/etc/edge-gateway/gateway.yaml"
    sed "s#^plugin /usr/lib/[^/]*/mosquitto_dynamic_security.so\$#plugin /usr/lib/$multiarch/mosquitto_dynamic_security.so#" \
        "$repo/config/mosquitto/edge-gateway.conf" >"$dest/etc/mosquitto/conf.d/edge-gateway.conf"
    grep -q "^plugin /usr/lib/$multiarch/mosquitto_dynamic_security.so\$" "$dest/etc/mosquitto/conf.d/edge-gateway.conf" ||
        eg_die "config/mosquitto/edge-gateway.conf has no 'plugin /usr/lib/<multiarch>/mosquitto_dynamic_security.so' line"
    chmod 0644 "$dest/etc/mosquitto/conf.d/edge-gateway.conf"
}
