package proxy

import (
	"context"
	"io"
	"net"
	"sync"
)

// passthrough splices a dask TLS connection to its scheduler: dial,
// replay the peeked ClientHello, then copy both ways with half-close.
func (p *Proxy) passthrough(c net.Conn, name string, peeked []byte) {
	defer c.Close()
	route, ok := p.cfg.Routes.Lookup(name)
	if !ok {
		p.log.Info("unknown cluster in SNI", "cluster", name, "remote", c.RemoteAddr())
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DialTimeout)
	up, err := p.cfg.DialContext(ctx, "tcp", route.Scheduler)
	cancel()
	if err != nil {
		p.log.Warn("dial scheduler", "cluster", name, "addr", route.Scheduler, "err", err)
		return
	}
	defer up.Close()
	if _, err := up.Write(peeked); err != nil {
		return
	}
	p.track(c, up, true)
	defer p.track(c, up, false)
	var wg sync.WaitGroup
	wg.Go(func() { proxyCopy(up, c) })
	proxyCopy(c, up)
	wg.Wait()
}

func (p *Proxy) track(a, b net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.tcp[a], p.tcp[b] = struct{}{}, struct{}{}
	} else {
		delete(p.tcp, a)
		delete(p.tcp, b)
	}
}

// proxyCopy copies src to dst until EOF, then half-closes: dst's write
// side and src's read side. Between two *net.TCPConn io.Copy uses splice.
func proxyCopy(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	if c, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = c.CloseWrite()
	} else {
		dst.Close()
	}
	if c, ok := src.(interface{ CloseRead() error }); ok {
		_ = c.CloseRead()
	}
}
