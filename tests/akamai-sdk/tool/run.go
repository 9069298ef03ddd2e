package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/akamai/AkamaiOPEN-edgegrid-golang/v11/pkg/edgegrid"
	"github.com/akamai/AkamaiOPEN-edgegrid-golang/v11/pkg/iam"
)

// Ids the checks grant. The store describes them from its catalogue (names of Akamai's own
// SDK and Terraform fixtures); a real account has its own.
const (
	apiSearchDataFeed int64 = 5580
	apiEdgeWorkers    int64 = 5801
	apiIdentity       int64 = 1
	groupTop          int64 = 10
	roleEditor        int64 = 5
	roleViewer        int64 = 6
	authorizedUser          = "sdk-user"
)

// suite runs the checks in order; later checks use what earlier ones created.
type suite struct {
	ctx         context.Context
	store       *store
	adminConfig edgegrid.Config
	admin       *client
	passed      int
	total       int

	main         *iam.CreateAPIClientResponse // the fully specified client
	mainSigner   *client                      // signs with main's first credential
	second       *iam.CreateCredentialResponse
	secondSigner *client
}

func run(st *store) (passed, total int) {
	s := &suite{ctx: context.Background(), store: st}
	s.check("edgerc: the bootstrap .edgerc loads with edgegrid.New", s.loadAdmin)
	if s.admin == nil {
		return s.passed, s.total
	}
	s.adminChecks()
	s.createChecks()
	s.getAndListChecks()
	s.accessLevelChecks()
	s.ipACLChecks()
	s.purgeOptionChecks()
	s.updateChecks()
	s.lockChecks()
	s.credentialChecks()
	s.expiresOnChecks()
	s.accountSwitchChecks()
	s.signingChecks()
	s.deleteChecks()
	return s.passed, s.total
}

// check runs one check and prints its verdict; a panic (a nil the API left out) is a failure.
func (s *suite) check(name string, fn func() error) {
	s.total++
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return fn()
	}()
	if err == nil {
		s.passed++
		fmt.Printf("ok %s\n", name)
		return
	}
	fmt.Printf("FAIL %s: %s\n", name, plain(err))
}

func (s *suite) loadAdmin() error {
	config, err := edgegrid.New(edgegrid.WithFile(s.store.edgerc), edgegrid.WithSection("default"))
	if err != nil {
		return err
	}
	if err := all(
		equal("host", config.Host, s.store.addr),
		expect(strings.HasPrefix(config.ClientToken, "akab-"), "client_token does not start with akab-"),
		expect(strings.HasPrefix(config.AccessToken, "akab-"), "access_token does not start with akab-"),
	); err != nil {
		return err
	}
	admin, err := newClient(*config)
	if err != nil {
		return err
	}
	s.adminConfig, s.admin = *config, admin
	return nil
}

// signerFor speaks as a client with one of its credentials, optionally in another account.
func (s *suite) signerFor(accessToken, clientToken, clientSecret, accountSwitchKey string) (*client, error) {
	return newClient(edgegrid.Config{
		Host:         s.store.addr,
		ClientToken:  clientToken,
		ClientSecret: clientSecret,
		AccessToken:  accessToken,
		AccountKey:   accountSwitchKey,
	})
}

// switched is the admin identity acting in the account of switchKey.
func (s *suite) switched(switchKey string) (*client, error) {
	config := s.adminConfig
	config.AccountKey = switchKey
	return newClient(config)
}

// whoAmI is the client id the signer authenticates as (GET /api-clients/self).
func whoAmI(ctx context.Context, c *client) (string, error) {
	me, err := c.iam.GetAPIClient(ctx, iam.GetAPIClientRequest{})
	if err != nil {
		return "", err
	}
	return me.ClientID, nil
}

// authenticatesAs checks that the signer's requests are accepted as client id.
func authenticatesAs(ctx context.Context, c *client, id string) error {
	got, err := whoAmI(ctx, c)
	if err != nil {
		return err
	}
	return equal("self clientId", got, id)
}

// isRefused checks that the signer's requests are refused with 401.
func isRefused(ctx context.Context, c *client) error {
	_, err := whoAmI(ctx, c)
	return refusedWith(err, 401)
}

func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}

func missing(what string) error {
	return fmt.Errorf("not run: needs %s", what)
}

func expect(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(format, args...)
}

func equal[T comparable](what string, got, want T) error {
	if got == want {
		return nil
	}
	return fmt.Errorf("%s is %v, want %v", what, got, want)
}

func equalTime(what string, got, want time.Time) error {
	if got.Equal(want) {
		return nil
	}
	return fmt.Errorf("%s is %s, want %s", what, got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
}

// all is the first failure among already evaluated assertions.
func all(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
