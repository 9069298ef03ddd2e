package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"

	"github.com/akamai/AkamaiOPEN-edgegrid-golang/v11/pkg/iam"
)

func (s *suite) accountSwitchChecks() {
	other, err := s.switched(s.store.ids.OtherAccountSwitchKey)
	var id string
	s.check("account switch: create in another account (edgerc account_key)", func() error {
		if err != nil {
			return err
		}
		created, err := other.iam.CreateAPIClient(s.ctx, basicRequest(uniqueName("sdk-switched")))
		if err != nil {
			return err
		}
		id = created.ClientID
		return expect(id != "", "no clientId")
	})
	s.check("account switch: listed there, not at home", func() error {
		if id == "" {
			return missing("the client in the other account")
		}
		there, err := other.iam.ListAPIClients(s.ctx, iam.ListAPIClientsRequest{})
		if err != nil {
			return err
		}
		home, err := s.admin.iam.ListAPIClients(s.ctx, iam.ListAPIClientsRequest{})
		if err != nil {
			return err
		}
		return all(
			expect(findListed(there, id) != nil, "not listed in the other account"),
			expect(findListed(home, id) == nil, "listed in the home account"),
		)
	})
	s.check("account switch: not found from home, found with the key", func() error {
		if id == "" {
			return missing("the client in the other account")
		}
		_, err := s.admin.iam.GetAPIClient(s.ctx, iam.GetAPIClientRequest{ClientID: id})
		if err := refusedWith(err, http.StatusNotFound); err != nil {
			return fmt.Errorf("from home: %w", err)
		}
		got, err := other.iam.GetAPIClient(s.ctx, iam.GetAPIClientRequest{ClientID: id})
		if err != nil {
			return err
		}
		return equal("clientId", got.ClientID, id)
	})
	s.check("account switch: an unknown switch key refused", func() error {
		unknown, err := s.switched("1-NOPE:1-NOPE")
		if err != nil {
			return err
		}
		_, err = unknown.iam.ListAPIClients(s.ctx, iam.ListAPIClientsRequest{})
		return refusedWith(err, http.StatusForbidden)
	})
	s.check("account switch: a client without allowAccountSwitch cannot switch", func() error {
		if s.main == nil || len(s.main.Credentials) == 0 {
			return missing("the created credential")
		}
		c := s.main.Credentials[0]
		signer, err := s.signerFor(s.main.AccessToken, c.ClientToken, c.ClientSecret, s.store.ids.OtherAccountSwitchKey)
		if err != nil {
			return err
		}
		_, err = signer.iam.ListAPIClients(s.ctx, iam.ListAPIClientsRequest{})
		return refusedWith(err, http.StatusForbidden)
	})
	s.check("account switch: delete in the other account", func() error {
		if id == "" {
			return missing("the client in the other account")
		}
		if err := other.iam.DeleteAPIClient(s.ctx, iam.DeleteAPIClientRequest{ClientID: id}); err != nil {
			return err
		}
		_, err := other.iam.GetAPIClient(s.ctx, iam.GetAPIClientRequest{ClientID: id})
		return refusedWith(err, http.StatusNotFound)
	})
}

var signaturePattern = regexp.MustCompile(`signature=[^;]*$`)

func (s *suite) signingChecks() {
	s.check("signing: a tampered signature refused", func() error {
		forged := sha256.Sum256([]byte("not the signature"))
		s.admin.transport.tamperNext(func(r *http.Request) {
			header := r.Header.Get("Authorization")
			r.Header.Set("Authorization", signaturePattern.ReplaceAllString(header, "signature="+base64.StdEncoding.EncodeToString(forged[:])))
		})
		return isRefused(s.ctx, s.admin)
	})
	s.check("signing: a replayed nonce refused", func() error {
		if err := authenticatesAs(s.ctx, s.admin, s.store.ids.ClientID); err != nil {
			return fmt.Errorf("first send: %w", err)
		}
		status, err := s.admin.transport.replay(s.ctx)
		if err != nil {
			return err
		}
		return equal("status of the replay", status, http.StatusUnauthorized)
	})
	s.check("signing: a query changed after signing refused", func() error {
		s.admin.transport.tamperNext(func(r *http.Request) { r.URL.RawQuery = "actions=true" })
		return isRefused(s.ctx, s.admin)
	})
	s.check("signing: a body changed after signing refused", func() error {
		s.admin.transport.tamperNext(func(r *http.Request) {
			changed, _ := toMap(basicRequest(uniqueName("sdk-changed-body")))
			changed["clientType"] = "USER_CLIENT"
			data, _ := json.Marshal(changed)
			setBody(r, data)
		})
		_, err := s.admin.iam.CreateAPIClient(s.ctx, basicRequest(uniqueName("sdk-signed-body")))
		return refusedWith(err, http.StatusUnauthorized)
	})
	s.check("signing: a wrong client secret refused", func() error {
		if s.main == nil || len(s.main.Credentials) == 0 {
			return missing("the created credential")
		}
		wrong := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
		signer, err := s.signerFor(s.main.AccessToken, s.main.Credentials[0].ClientToken, wrong, "")
		if err != nil {
			return err
		}
		return isRefused(s.ctx, signer)
	})
}
