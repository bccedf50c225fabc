/*
 * tapbench: the TAP ceiling for docs/performance.md. A bare TCP sender or sink on a TAP
 * device, facing the kernel in the same kind of namespace the managed stack uses, with none
 * of a real stack's work (no retransmission, no timers, fixed window): what one user-space
 * thread can move through a TAP on this machine. It also plays the kernel side's socket
 * application (sock-send / sock-sink) for the managed stack's runs.
 *
 *   tapbench tap-sink   DEV LOCAL_IP SECONDS [vnet]        kernel connects to LOCAL_IP:5001 and sends
 *   tapbench tap-send   DEV LOCAL_IP PEER_IP SECONDS [vnet] we connect to PEER_IP:5001 and send
 *   tapbench sock-sink  PORT                               kernel socket: accept, read until EOF
 *   tapbench sock-send  IP PORT SECONDS                    kernel socket: connect, write for SECONDS
 *
 * tap-* create DEV (non-persistent) and wait until it is up with an address on the kernel side
 * (the caller's script runs `ip addr add` / `ip link set up`). "vnet" opens the TAP with
 * IFF_VNET_HDR: received superframes (TUN_F_CSUM|TUN_F_TSO4) and sent 64 KiB TSO superframes
 * with a partial checksum. Output: one line "goodput_gbps=X bytes=N seconds=S".
 * Build: make tapbench (or cc -O2 -o tapbench tapbench.c).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PORT 5001
#define MTU 1500
#define MSS 1460
#define SUPER (65536 - 256)
#define VNET 12

static int vnet;
static uint8_t my_mac[6] = {0x02, 0x54, 0x42, 0, 0, 2}, peer_mac[6];
static uint32_t my_ip, peer_ip;
static uint16_t my_port = PORT, peer_port = PORT;
static int connected;   /* peer_port is known: segments of any other connection are ignored */

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static void die(const char *what) { perror(what); exit(1); }

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
    for (; n > 1; n -= 2, p += 2) s += (uint32_t)p[0] << 8 | p[1];
    if (n) s += (uint32_t)p[0] << 8;
    return s;
}
static uint16_t fold(uint32_t s) { while (s >> 16) s = (s & 0xffff) + (s >> 16); return (uint16_t)s; }
static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

static int open_tap(const char *name)
{
    int fd = open("/dev/net/tun", O_RDWR);
    if (fd < 0) die("open /dev/net/tun");
    struct ifreq ifr = {0};
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("TUNSETIFF");
    if (vnet) {
        int size = VNET;
        if (ioctl(fd, TUNSETVNETHDRSZ, &size) < 0) die("TUNSETVNETHDRSZ");
        if (ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4) < 0) die("TUNSETOFFLOAD");
    }
    return fd;
}

/* Builds Ethernet + IPv4 + TCP (20-byte header, no options) in front of len payload bytes at f. */
static size_t frame(uint8_t *f, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t window, size_t len, int partial)
{
    memcpy(f, peer_mac, 6); memcpy(f + 6, my_mac, 6); put16(f + 12, 0x0800);
    uint8_t *ip = f + 14, *tcp = ip + 20;
    memset(ip, 0, 20);
    ip[0] = 0x45; put16(ip + 2, (uint16_t)(len > SUPER ? 0 : 40 + len)); ip[6] = 0x40; ip[8] = 64; ip[9] = 6;
    memcpy(ip + 12, &my_ip, 4); memcpy(ip + 16, &peer_ip, 4);
    put16(ip + 10, ~fold(sum16(ip, 20, 0)));
    memset(tcp, 0, 20);
    put16(tcp, my_port); put16(tcp + 2, peer_port); put32(tcp + 4, seq); put32(tcp + 8, ack);
    tcp[12] = 5 << 4; tcp[13] = flags; put16(tcp + 14, window);
    uint32_t pseudo = sum16(ip + 12, 8, 0) + 6 + 20 + (uint32_t)len;
    if (partial) put16(tcp + 16, fold(pseudo));                      /* the kernel finishes it */
    else put16(tcp + 16, ~fold(sum16(tcp, 20 + len, pseudo)));
    return 54 + len;
}

/* Writes one frame (with a zeroed or GSO virtio-net header in front when vnet). */
static void send_frame(int fd, uint8_t *buf, size_t len, uint16_t gso_size)
{
    if (vnet) {
        struct virtio_net_hdr_v1 h = {0};   /* 12 bytes: num_buffers (0) after virtio_net_hdr */
        h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM; h.csum_start = 34; h.csum_offset = 16;
        if (gso_size) { h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4; h.gso_size = gso_size; h.hdr_len = 54; }
        memcpy(buf - VNET, &h, VNET);
        buf -= VNET; len += VNET;
    }
    if (write(fd, buf, len) < 0 && errno != EAGAIN && errno != ENOBUFS) die("write tap");
}

/*
 * Whether a TCP header belongs to our connection. A TAP device of an earlier run in the same
 * namespace leaves kernel sockets behind (a LAST_ACK retransmitting its FIN to our address):
 * their segments must not end or disturb this run.
 */
static int ours(const uint8_t *tcp)
{
    uint16_t src = (uint16_t)(tcp[0] << 8 | tcp[1]), dst = (uint16_t)(tcp[2] << 8 | tcp[3]);
    return dst == my_port && (!connected || src == peer_port);
}

/* Reads frames; answers ARP; returns a TCP segment's header pointer (and payload length) for us.
   Returns NULL when the descriptor is non-blocking and has nothing to read. */
static uint8_t *read_tcp(int fd, uint8_t *buf, size_t cap, size_t *payload, int *out_fd_arp)
{
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n < 0 && errno == EAGAIN) return NULL;
        if (n < 0) die("read tap");
        uint8_t *f = buf + (vnet ? VNET : 0);
        n -= vnet ? VNET : 0;
        if (n < 42) continue;
        uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
        if (type == 0x0806 && f[21] == 1 && !memcmp(f + 38, &my_ip, 4)) {   /* ARP request for us */
            memcpy(peer_mac, f + 6, 6);
            uint8_t r[64] = {0}, *a = r + (vnet ? VNET : 0);
            memcpy(a, f + 6, 6); memcpy(a + 6, my_mac, 6); put16(a + 12, 0x0806);
            memcpy(a + 14, f + 14, 6); a[21] = 2;
            memcpy(a + 22, my_mac, 6); memcpy(a + 28, &my_ip, 4); memcpy(a + 32, f + 22, 6); memcpy(a + 38, f + 28, 4);
            if (write(fd, r, (vnet ? VNET : 0) + 42) < 0) die("write arp");
            (void)out_fd_arp;
            continue;
        }
        if (type != 0x0800 || f[23] != 6 || memcmp(f + 30, &my_ip, 4)) continue;
        memcpy(peer_mac, f + 6, 6);
        size_t ihl = (f[14] & 15) * 4, total = (size_t)(f[16] << 8 | f[17]);
        uint8_t *tcp = f + 14 + ihl;
        if (!ours(tcp)) continue;
        size_t thl = (tcp[12] >> 4) * 4;
        if (total == 0) total = (size_t)n - 14;       /* a GSO superframe may carry 0 */
        *payload = total - ihl - thl;
        return tcp;
    }
}

/* Sends an ARP request until the kernel side answers (it learns our MAC from it too). */
static void resolve(int fd, uint8_t *buf, size_t cap)
{
    uint8_t r[64] = {0}, *a = r + (vnet ? VNET : 0);
    memset(a, 0xff, 6); memcpy(a + 6, my_mac, 6); put16(a + 12, 0x0806);
    put16(a + 14, 1); put16(a + 16, 0x0800); a[18] = 6; a[19] = 4; put16(a + 20, 1);
    memcpy(a + 22, my_mac, 6); memcpy(a + 28, &my_ip, 4); memcpy(a + 38, &peer_ip, 4);
    for (;;) {
        if (write(fd, r, (vnet ? VNET : 0) + 42) < 0 && errno != EIO) die("write arp request");
        ssize_t n = read(fd, buf, cap);
        uint8_t *f = buf + (vnet ? VNET : 0);
        if (n >= 42 && f[12] == 8 && f[13] == 6 && f[21] == 2) { memcpy(peer_mac, f + 22, 6); return; }
        if (n < 0 && errno != EAGAIN) usleep(50000);
    }
}

static void wait_up(const char *dev)
{
    char path[128];
    snprintf(path, sizeof path, "/sys/class/net/%s/operstate", dev);
    for (int i = 0; i < 400; i++) {
        FILE *f = fopen(path, "r");
        char state[32] = "";
        if (f) { if (!fgets(state, sizeof state, f)) state[0] = 0; fclose(f); }
        if (!strncmp(state, "up", 2) || !strncmp(state, "unknown", 7)) return;
        usleep(10000);
    }
}

static int tap_sink(const char *dev, double seconds)
{
    int fd = open_tap(dev);
    wait_up(dev);
    size_t cap = 70000;
    uint8_t *buf = malloc(cap), *out = malloc(256);
    uint32_t rcv_nxt = 0, iss = 1000;
    long long bytes = 0;
    double start = 0, last = 0;
    int segs = 0;
    alarm((unsigned)seconds + 10);   /* a sender that never finishes must not hang the script */
    for (;;) {
        size_t len;
        uint8_t *tcp = read_tcp(fd, buf, cap, &len, NULL);
        uint8_t flags = tcp[13];
        uint32_t seq = get32(tcp + 4);
        if (flags & 0x02) {                                       /* SYN: answer with wscale 14 */
            memcpy(&peer_ip, tcp - 20 + 12, 4);
            peer_port = (uint16_t)(tcp[0] << 8 | tcp[1]);
            connected = 1;
            rcv_nxt = seq + 1;
            uint8_t *f = out + VNET;
            size_t n = frame(f, iss, rcv_nxt, 0x12, 65535, 0, vnet);
            /* Append MSS and window-scale options: rebuild with a 28-byte header. */
            uint8_t *t = f + 34;
            t[12] = 7 << 4; put16(f + 16, 48);
            f[24] = f[25] = 0; put16(f + 24, ~fold(sum16(f + 14, 20, 0)));
            uint8_t opts[8] = {2, 4, MSS >> 8, MSS & 255, 1, 3, 3, 14};
            memcpy(t + 20, opts, 8);
            uint32_t pseudo = sum16(f + 26, 8, 0) + 6 + 28;
            put16(t + 16, 0);
            put16(t + 16, vnet ? fold(pseudo) : (uint16_t)~fold(sum16(t, 28, pseudo)));
            send_frame(fd, f, n + 8, 0);
            start = now();
            continue;
        }
        if (len == 0 && !(flags & 0x01)) continue;
        if (seq == rcv_nxt && len) { rcv_nxt += (uint32_t)len; bytes += (long long)len; last = now(); }
        if (flags & 0x01) rcv_nxt++;
        /* ACK every other segment (a GRO superframe counts as many), and every FIN. */
        segs += len > MSS ? 2 : 1;
        if (segs >= 2 || (flags & 0x01)) {
            segs = 0;
            send_frame(fd, out + VNET, frame(out + VNET, iss + 1, rcv_nxt, 0x10 | (flags & 0x01), 65535, 0, vnet), 0);
        }
        if ((flags & 0x01) || (start && now() - start > seconds + 1)) break;
    }
    double elapsed = last - start;
    printf("goodput_gbps=%.3f bytes=%lld seconds=%.3f\n", bytes * 8 / elapsed / 1e9, bytes, elapsed);
    return 0;
}

static int tap_send(const char *dev, double seconds)
{
    int fd = open_tap(dev);
    wait_up(dev);
    size_t cap = 70000;
    uint8_t *buf = malloc(cap), *out = malloc(70000);
    int nb = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, nb | O_NONBLOCK);
    resolve(fd, buf, cap);
    fcntl(fd, F_SETFL, nb);
    uint32_t iss = 1000, snd_una, snd_nxt, rcv_nxt = 0, wnd = 65535;
    int wscale = 0;
    uint8_t *f = out + VNET;
    for (int tries = 0;; tries++) {                               /* SYN with MSS and wscale 14 */
        size_t n = frame(f, iss, 0, 0x02, 65535, 0, vnet);
        uint8_t *t = f + 34;
        t[12] = 7 << 4; put16(f + 16, 48); put16(f + 24, 0); put16(f + 24, ~fold(sum16(f + 14, 20, 0)));
        uint8_t opts[8] = {2, 4, MSS >> 8, MSS & 255, 1, 3, 3, 14};
        memcpy(t + 20, opts, 8);
        uint32_t pseudo = sum16(f + 26, 8, 0) + 6 + 28;
        put16(t + 16, 0);
        put16(t + 16, vnet ? fold(pseudo) : (uint16_t)~fold(sum16(t, 28, pseudo)));
        send_frame(fd, f, n + 8, 0);
        size_t len;
        uint8_t *tcp = read_tcp(fd, buf, cap, &len, NULL);
        if ((tcp[13] & 0x12) == 0x12) {
            rcv_nxt = get32(tcp + 4) + 1;
            for (uint8_t *o = tcp + 20; o < tcp + (tcp[12] >> 4) * 4;) {
                if (*o == 0) break;
                if (*o == 1) { o++; continue; }
                if (*o == 3) wscale = o[2];
                o += o[1];
            }
            wnd = (uint32_t)(tcp[14] << 8 | tcp[15]);
            break;
        }
        if (tries > 50) { fprintf(stderr, "no SYN-ACK\n"); return 1; }
    }
    snd_una = snd_nxt = iss + 1;
    send_frame(fd, f, frame(f, snd_nxt, rcv_nxt, 0x10, 65535, 0, vnet), 0);
    memset(f + 54, 'x', SUPER);
    fcntl(fd, F_SETFL, nb | O_NONBLOCK);
    double start = now(), deadline = start + seconds;
    long long bytes = 0;
    while (now() < deadline) {
        /* Send what the window allows: one TSO superframe (vnet) or MSS frames. */
        uint32_t inflight = snd_nxt - snd_una;
        while (inflight + MSS <= wnd) {
            size_t len = vnet ? SUPER / MSS * MSS : MSS;
            if (inflight + len > wnd) len = (wnd - inflight) / MSS * MSS;
            if (len == 0) break;
            size_t n = frame(f, snd_nxt, rcv_nxt, 0x10, 65535, len, vnet);
            send_frame(fd, f, n, vnet && len > MSS ? MSS : 0);
            snd_nxt += (uint32_t)len;
            inflight += (uint32_t)len;
        }
        /* Read ACKs until EAGAIN. */
        size_t len;
        uint8_t *tcp;
        while ((tcp = read_tcp(fd, buf, cap, &len, NULL))) {
            uint32_t ack = get32(tcp + 8);
            if ((int32_t)(ack - snd_una) > 0) { bytes += ack - snd_una; snd_una = ack; }
            wnd = (uint32_t)(tcp[14] << 8 | tcp[15]) << wscale;
        }
    }
    double elapsed = now() - start;
    /* Close properly: FIN, then the kernel's FIN is acknowledged, so no socket of ours is left in
       LAST_ACK retransmitting its FIN into the next run on this namespace. */
    send_frame(fd, f, frame(f, snd_nxt, rcv_nxt, 0x11, 65535, 0, vnet), 0);
    for (double give_up = now() + 2; now() < give_up;) {
        size_t len;
        uint8_t *tcp = read_tcp(fd, buf, cap, &len, NULL);
        if (!tcp) { usleep(1000); continue; }
        if (!(tcp[13] & 0x01)) continue;
        send_frame(fd, f, frame(f, snd_nxt + 1, get32(tcp + 4) + (uint32_t)len + 1, 0x10, 65535, 0, vnet), 0);
        break;
    }
    printf("goodput_gbps=%.3f bytes=%lld seconds=%.3f\n", bytes * 8 / elapsed / 1e9, bytes, elapsed);
    return 0;
}

static int sock_sink(int port)
{
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 4) < 0) die("listen");
    int c = accept(l, NULL, NULL);
    static char b[1 << 20];
    long long bytes = 0;
    ssize_t n;
    double start = now();
    while ((n = read(c, b, sizeof b)) > 0) bytes += n;
    double elapsed = now() - start;
    printf("goodput_gbps=%.3f bytes=%lld seconds=%.3f\n", bytes * 8 / elapsed / 1e9, bytes, elapsed);
    return 0;
}

static int sock_send(const char *ip, int port, double seconds)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    for (int i = 0; connect(s, (struct sockaddr *)&a, sizeof a) < 0; i++) {
        if (i > 100) die("connect");
        close(s); s = socket(AF_INET, SOCK_STREAM, 0); usleep(50000);
    }
    static char b[1 << 20];
    memset(b, 'k', sizeof b);
    struct timeval two = {.tv_sec = 2};
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &two, sizeof two);   /* a peer that stops acknowledging */
    long long bytes = 0;
    double start = now(), deadline = start + seconds;
    while (now() < deadline) {
        ssize_t n = write(s, b, sizeof b);
        if (n <= 0) { fprintf(stderr, "sock-send: write: %s\n", n < 0 ? strerror(errno) : "0"); return 1; }
        bytes += n;
    }
    double elapsed = now() - start;
    shutdown(s, SHUT_WR);
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &two, sizeof two);   /* the peer's FIN, or give up */
    while (read(s, b, sizeof b) > 0) {}
    printf("goodput_gbps=%.3f bytes=%lld seconds=%.3f\n", bytes * 8 / elapsed / 1e9, bytes, elapsed);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) goto usage;
    vnet = !strcmp(argv[argc - 1], "vnet");
    if (!strcmp(argv[1], "tap-sink") && argc >= 5) {
        inet_pton(AF_INET, argv[3], &my_ip);
        return tap_sink(argv[2], atof(argv[4]));
    }
    if (!strcmp(argv[1], "tap-send") && argc >= 6) {
        inet_pton(AF_INET, argv[3], &my_ip);
        inet_pton(AF_INET, argv[4], &peer_ip);
        my_port = 40001;
        connected = 1;                                   /* to PORT, from 40001 */
        return tap_send(argv[2], atof(argv[5]));
    }
    if (!strcmp(argv[1], "sock-sink") && argc >= 3) return sock_sink(atoi(argv[2]));
    if (!strcmp(argv[1], "sock-send") && argc >= 5) return sock_send(argv[2], atoi(argv[3]), atof(argv[4]));
usage:
    fprintf(stderr, "usage: see the comment at the top of tapbench.c\n");
    return 2;
}
