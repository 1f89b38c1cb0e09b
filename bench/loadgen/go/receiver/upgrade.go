package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"sort"
	"strings"
)

// upgradeRequest is the HTTP/1.1 upgrade request the Node workers send
// (upgradeRequest in bench/loadgen/client-frames.ts): a fresh random key,
// then any extra headers of the target.
func upgradeRequest(host string, port int, path string, headers map[string]string) []byte {
	var key [16]byte
	_, _ = rand.Read(key[:])
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", path, host, port)
	fmt.Fprintf(&b, "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", base64.StdEncoding.EncodeToString(key[:]))
	names := make([]string, 0, len(headers))
	for name := range headers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&b, "%s: %s\r\n", name, headers[name])
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// roomPath is the request path of a plain WebSocket room: `/ws?room=NAME`,
// or `&room=NAME` when the path already has a query (roomPath in client-frames.ts).
func roomPath(path, room string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "room=" + encodeURIComponent(room)
}

// encodeURIComponent escapes as JavaScript's function of that name does:
// letters, digits and -_.!~*'() stay, every other UTF-8 byte becomes %XX.
func encodeURIComponent(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// resolveIPv4 is the IPv4 address of a target host (a literal or a name).
func resolveIPv4(host string) ([4]byte, error) {
	var out [4]byte
	if ip := net.ParseIP(host); ip != nil {
		if v4 := ip.To4(); v4 != nil {
			copy(out[:], v4)
			return out, nil
		}
		return out, fmt.Errorf("target host %s is not an IPv4 address", host)
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return out, fmt.Errorf("cannot resolve target host %s: %w", host, err)
	}
	for _, ip := range ips {
		if v4 := ip.To4(); v4 != nil {
			copy(out[:], v4)
			return out, nil
		}
	}
	return out, fmt.Errorf("target host %s has no IPv4 address", host)
}
