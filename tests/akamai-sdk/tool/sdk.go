package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/akamai/AkamaiOPEN-edgegrid-golang/v11/pkg/edgegrid"
	"github.com/akamai/AkamaiOPEN-edgegrid-golang/v11/pkg/iam"
	"github.com/akamai/AkamaiOPEN-edgegrid-golang/v11/pkg/log"
	"github.com/akamai/AkamaiOPEN-edgegrid-golang/v11/pkg/session"
)

// sentRequest is a request as the SDK signed it.
type sentRequest struct {
	method string
	url    string
	header http.Header
	body   []byte
}

// transport sends the SDK's https-signed requests over plain HTTP, remembers the last one as
// signed (to replay it) and applies a one-shot change after signing (to tamper with it).
type transport struct {
	mu    sync.Mutex
	last  *sentRequest
	alter func(*http.Request)
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		read, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		body = read
	}
	out := r.Clone(r.Context())
	out.URL.Scheme = "http"
	setBody(out, body)

	t.mu.Lock()
	t.last = &sentRequest{method: out.Method, url: out.URL.String(), header: out.Header.Clone(), body: body}
	alter := t.alter
	t.alter = nil
	t.mu.Unlock()
	if alter != nil {
		alter(out)
	}
	return http.DefaultTransport.RoundTrip(out)
}

func setBody(r *http.Request, body []byte) {
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
}

// tamperNext makes the next request go out changed by alter, after the SDK signed it.
func (t *transport) tamperNext(alter func(*http.Request)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.alter = alter
}

func (t *transport) lastSent() *sentRequest {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// replay sends the last request again exactly as signed (same nonce) and returns the status.
func (t *transport) replay(ctx context.Context) (int, error) {
	last := t.lastSent()
	if last == nil {
		return 0, errors.New("no request to replay")
	}
	request, err := http.NewRequestWithContext(ctx, last.method, last.url, bytes.NewReader(last.body))
	if err != nil {
		return 0, err
	}
	request.Header = last.header.Clone()
	response, err := http.DefaultTransport.RoundTrip(request)
	if err != nil {
		return 0, err
	}
	_ = response.Body.Close()
	return response.StatusCode, nil
}

// client is one EdgeGrid identity (credential, optionally in a switched account) speaking
// through the SDK.
type client struct {
	iam       iam.IAM
	session   session.Session
	transport *transport
}

func newClient(config edgegrid.Config) (*client, error) {
	if config.MaxBody == 0 {
		config.MaxBody = edgegrid.MaxBodySize
	}
	t := &transport{}
	sess, err := session.New(
		session.WithSigner(config),
		session.WithClient(&http.Client{Transport: t, Timeout: 30 * time.Second}),
		// The SDK's debug log would show request bodies; nothing of it is needed here.
		session.WithLog(log.NOPLogger()),
	)
	if err != nil {
		return nil, err
	}
	return &client{iam: iam.Client(sess), session: sess, transport: t}, nil
}

// raw sends a request the SDK's typed methods cannot (a body its validation refuses, or a
// shape it never produces) through the SDK's session, signed like any other, and returns the
// status; a 2xx body is decoded into out when out is not nil.
func (c *client) raw(ctx context.Context, method, path string, body, out any) (int, error) {
	request, err := http.NewRequestWithContext(ctx, method, path, nil)
	if err != nil {
		return 0, err
	}
	var in []any
	if body != nil {
		in = append(in, body)
	}
	response, err := c.session.Exec(request, out, in...)
	if err != nil {
		return 0, err
	}
	defer session.CloseResponseBody(response)
	return response.StatusCode, nil
}

// statusOf is the HTTP status of an API error returned by the SDK (0 for other errors).
func statusOf(err error) int {
	var apiErr *iam.Error
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode
	}
	return 0
}

// plain is err in one line: an API problem as `HTTP <status> <title>: <detail>`.
func plain(err error) string {
	var apiErr *iam.Error
	if errors.As(err, &apiErr) {
		return fmt.Sprintf("HTTP %d %s: %s", apiErr.StatusCode, apiErr.Title, apiErr.Detail)
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

// refusedWith checks that err is an API error with the wanted status.
func refusedWith(err error, want int) error {
	switch got := statusOf(err); {
	case err == nil:
		return fmt.Errorf("accepted, want HTTP %d", want)
	case got != want:
		return fmt.Errorf("want HTTP %d, got %s", want, plain(err))
	}
	return nil
}

// refused checks that err is a 4xx API error (the exact status upstream uses is not documented).
func refused(err error) error {
	if err == nil {
		return errors.New("accepted, want a 4xx refusal")
	}
	if got := statusOf(err); got < 400 || got > 499 {
		return fmt.Errorf("want a 4xx refusal, got %s", plain(err))
	}
	return nil
}
