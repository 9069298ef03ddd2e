// Command akamai-sdk-conformance drives the credential store's Akamai IAM API v3 emulation
// through Akamai's official Go SDK (github.com/akamai/AkamaiOPEN-edgegrid-golang, pkg/iam over
// pkg/session and pkg/edgegrid): the full lifecycle of API clients and their credentials, as
// the SDK and Terraform (which is built on it) send it.
//
// Contract (see ../build.sh):
//
//	akamai-sdk-conformance --credstore-bin PATH
//	        starts `PATH credstore --listen 127.0.0.1:0 --data <temp dir> --admin-api`, reads
//	        the admin credential it bootstraps (akamai.edgerc, bootstrap.json), runs the checks,
//	        stops the store and removes the temp dir.
//	stdout: one line per check, `ok <name>` or `FAIL <name>: <plain reason>`, then
//	        `N of M checks passed`. No client secret is ever printed.
//	exit:   0 when every check passed; 1 when any failed; 2 with a one-line message on stderr
//	        when the store cannot be started or the arguments are wrong.
//
// The SDK signs for https; a transport sends the signed request over plain HTTP to the store,
// which accepts either scheme, and lets checks tamper with or replay a signed request.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	bin := flag.String("credstore-bin", "", "the apikey-operator binary whose credstore to check")
	flag.Parse()
	if *bin == "" || flag.NArg() != 0 {
		fail("usage: akamai-sdk-conformance --credstore-bin PATH")
	}
	store, err := startStore(*bin)
	if err != nil {
		fail(err.Error())
	}
	passed, total := run(store)
	store.stop()
	fmt.Printf("%d of %d checks passed\n", passed, total)
	if passed != total {
		os.Exit(1)
	}
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, "akamai-sdk-conformance: "+message)
	os.Exit(2)
}
