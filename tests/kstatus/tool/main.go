// Command kstatus applies kstatus -- status.Compute from sigs.k8s.io/cli-utils/pkg/kstatus/status,
// the status computation behind `kubectl wait`-style pollers, kpt, Config Sync and Flux -- to
// Kubernetes objects, without a cluster.
//
// Contract (see ../build.sh):
//
//	stdin:  a JSON array of full Kubernetes objects as the API server returns them (custom
//	        resources included), or a List object ({"kind":"List","items":[...]}, what
//	        `kubectl get -o json` prints). Every object needs a string kind and metadata.name.
//	stdout: a JSON array, one entry per input object, in input order:
//	        {"kind":"...","namespace":"...","name":"...",
//	         "status":"InProgress|Failed|Current|Terminating|NotFound|Unknown",
//	         "message":"...",
//	         "conditions":[{"type":"Reconciling|Stalled","status":"True|False|Unknown",
//	                        "reason":"...","message":"..."}]}
//	        "namespace" is "" for cluster-scoped objects; "conditions" is always an array.
//	        When status.Compute returns an error (a malformed field, e.g. a string
//	        metadata.generation) the entry is "Unknown" with the error as "message" and also in
//	        "error", as cli-utils' own pollers report it; the exit status stays 0.
//	exit:   0 on success; 2 with a one-line message on stderr on bad input (not JSON, not an
//	        array of objects, an object without kind or metadata.name) or bad arguments.
//
// Numbers are decoded with apimachinery's JSON decoder, so integers are int64 as in objects read
// through client-go; kstatus reads metadata.generation and status.observedGeneration as int64.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

type verdict struct {
	Kind       string      `json:"kind"`
	Namespace  string      `json:"namespace"`
	Name       string      `json:"name"`
	Status     string      `json:"status"`
	Message    string      `json:"message"`
	Conditions []condition `json:"conditions"`
	Error      string      `json:"error,omitempty"`
}

const usage = `usage: kstatus < objects.json > verdicts.json
Reads a JSON array of Kubernetes objects (or a List object) on stdin and prints, for each,
the verdict of kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute) as a JSON array.
  --version   print the cli-utils version this binary was built with
`

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(2)
}

func cliUtilsVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "sigs.k8s.io/cli-utils" {
				return dep.Version
			}
		}
	}
	return "unknown"
}

func main() {
	for _, arg := range os.Args[1:] {
		switch arg {
		case "-h", "--help":
			fmt.Print(usage)
			return
		case "--version":
			fmt.Printf("sigs.k8s.io/cli-utils %s\n", cliUtilsVersion())
			return
		default:
			fmt.Fprint(os.Stderr, usage)
			fail("unexpected argument %q", arg)
		}
	}

	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	if len(bytes.TrimSpace(input)) == 0 {
		fail("stdin is empty; expected a JSON array of Kubernetes objects")
	}
	var doc any
	if err := utiljson.Unmarshal(input, &doc); err != nil {
		fail("stdin is not valid JSON: %v", err)
	}

	var items []any
	switch d := doc.(type) {
	case []any:
		items = d
	case map[string]any:
		list, ok := d["items"].([]any)
		if !ok {
			fail("stdin is a JSON object without an items array; expected a JSON array of Kubernetes objects or a List")
		}
		items = list
	default:
		fail("stdin is not a JSON array; expected a JSON array of Kubernetes objects")
	}

	verdicts := make([]verdict, 0, len(items))
	for i, item := range items {
		obj, ok := item.(map[string]any)
		if !ok {
			fail("object %d is not a JSON object", i)
		}
		u := &unstructured.Unstructured{Object: obj}
		if kind, ok := obj["kind"].(string); !ok || kind == "" {
			fail("object %d has no kind", i)
		}
		if name, _, _ := unstructured.NestedString(obj, "metadata", "name"); name == "" {
			fail("object %d (%s) has no metadata.name", i, u.GetKind())
		}

		v := verdict{
			Kind:       u.GetKind(),
			Namespace:  u.GetNamespace(),
			Name:       u.GetName(),
			Conditions: []condition{},
		}
		res, err := status.Compute(u)
		if err != nil {
			v.Status = string(status.UnknownStatus)
			v.Message = err.Error()
			v.Error = err.Error()
		} else {
			v.Status = string(res.Status)
			v.Message = res.Message
			for _, c := range res.Conditions {
				v.Conditions = append(v.Conditions, condition{
					Type:    string(c.Type),
					Status:  string(c.Status),
					Reason:  c.Reason,
					Message: c.Message,
				})
			}
		}
		verdicts = append(verdicts, v)
	}

	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(verdicts); err != nil {
		fail("writing stdout: %v", err)
	}
}
