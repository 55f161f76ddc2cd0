// Command pause holds a Kubernetes pod's namespaces open: it is the sandbox
// ("pause") container that containerd starts first in every pod. It sleeps,
// reaps the zombies of processes that end up as its children (it is PID 1 of
// a pod that shares its PID namespace), and exits on SIGTERM or SIGINT.
//
// Ours because no registry is reachable to pull registry.k8s.io/pause; built
// static (CGO_ENABLED=0) and packed into a FROM-scratch image by
// ticklake.devstack.cluster.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
