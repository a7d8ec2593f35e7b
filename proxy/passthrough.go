package proxy

import (
	"context"
	"io"
	"net"
	"sync"
)

// passthrough splices a dask TLS connection to its scheduler: dial,
// replay the peeked ClientHello, then copy both ways with half-close.
// c must be the accepted *net.TCPConn itself so io.Copy can splice.
func (p *Proxy) passthrough(c net.Conn, remote net.Addr, name string, peeked []byte) {
	defer c.Close()
	route, ok := p.cfg.Routes.Lookup(name)
	if !ok {
		p.m.unknownSNI.Inc()
		p.log.Info("unknown cluster in SNI", "cluster", name, "remote", remote)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DialTimeout)
	up, err := p.cfg.DialContext(ctx, "tcp", route.Scheduler)
	cancel()
	if err != nil {
		p.m.dialErrors.WithLabelValues("scheduler").Inc()
		p.log.Warn("dial scheduler", "cluster", name, "addr", route.Scheduler, "remote", remote, "err", err)
		return
	}
	defer up.Close()
	if _, err := up.Write(peeked); err != nil {
		return
	}
	p.m.conns.WithLabelValues("tls").Inc()
	p.m.active.WithLabelValues("tls").Inc()
	defer p.m.active.WithLabelValues("tls").Dec()
	if !p.track(c, up, true) {
		return // the drain timeout already passed: Shutdown closed the rest
	}
	defer p.track(c, up, false)
	var wg sync.WaitGroup
	wg.Go(func() { p.m.bytes.WithLabelValues("up").Add(float64(proxyCopy(up, c))) })
	p.m.bytes.WithLabelValues("down").Add(float64(proxyCopy(c, up) + int64(len(peeked))))
	wg.Wait()
}

// track registers (add) or forgets a passthrough pair so Shutdown can
// close it at the drain timeout. It refuses new pairs after that sweep.
func (p *Proxy) track(a, b net.Conn, add bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		if p.drained {
			return false
		}
		p.tcp[a], p.tcp[b] = struct{}{}, struct{}{}
	} else {
		delete(p.tcp, a)
		delete(p.tcp, b)
	}
	return true
}

// proxyCopy copies src to dst until EOF, then half-closes: dst's write
// side and src's read side. Between two *net.TCPConn io.Copy uses splice.
func proxyCopy(dst, src net.Conn) int64 {
	n, _ := io.Copy(dst, src)
	if c, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = c.CloseWrite()
	} else {
		dst.Close()
	}
	if c, ok := src.(interface{ CloseRead() error }); ok {
		_ = c.CloseRead()
	}
	return n
}
