package main

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/akamai/AkamaiOPEN-edgegrid-golang/v11/pkg/iam"
)

func (s *suite) purgeOptionChecks() {
	request := basicRequest(uniqueName("sdk-purge"))
	// Terraform requires purge_options with all_accessible_apis and sends it like this.
	request.PurgeOptions = &iam.PurgeOptions{
		CanPurgeByCacheTag: true,
		CanPurgeByCPCode:   true,
		CPCodeAccess:       iam.CPCodeAccess{CPCodes: []int64{101}},
	}
	replaced := iam.PurgeOptions{CPCodeAccess: iam.CPCodeAccess{AllCurrentAndNewCPCodes: true}}
	var clientID string
	s.check("create: purgeOptions with allAccessibleApis (Terraform's shape)", func() error {
		created, err := s.admin.iam.CreateAPIClient(s.ctx, request)
		if err != nil {
			return err
		}
		clientID = created.ClientID
		return purgeOptionsAre(created.PurgeOptions, *request.PurgeOptions)
	})
	s.check("update: purgeOptions replaced", func() error {
		if clientID == "" {
			return missing("the client with purgeOptions")
		}
		got, err := s.admin.iam.UpdateAPIClient(s.ctx, iam.UpdateAPIClientRequest{ClientID: clientID, Body: iam.UpdateAPIClientRequestBody{
			APIAccess:       request.APIAccess,
			AuthorizedUsers: request.AuthorizedUsers,
			ClientName:      request.ClientName,
			ClientType:      request.ClientType,
			GroupAccess:     request.GroupAccess,
			PurgeOptions:    &replaced,
		}})
		if err != nil {
			return err
		}
		return purgeOptionsAre(got.PurgeOptions, replaced)
	})
	s.check("get: purgeOptions kept", func() error {
		if clientID == "" {
			return missing("the client with purgeOptions")
		}
		got, err := s.admin.iam.GetAPIClient(s.ctx, iam.GetAPIClientRequest{ClientID: clientID, APIAccess: true})
		if err != nil {
			return err
		}
		return purgeOptionsAre(got.PurgeOptions, replaced)
	})
	s.check("create: purgeOptions need cpcodes unless allCurrentAndNewCpcodes (the SDK's rule)", func() error {
		raw, err := toMap(basicRequest(uniqueName("sdk-purge-no-cpcodes")))
		if err != nil {
			return err
		}
		// The SDK's validation stops a nil cpcodes list before sending; the server must refuse it too.
		raw["purgeOptions"] = map[string]any{
			"canPurgeByCacheTag": false, "canPurgeByCpcode": true,
			"cpcodeAccess": map[string]any{"allCurrentAndNewCpcodes": false, "cpcodes": nil},
		}
		status, err := s.admin.raw(s.ctx, http.MethodPost, clientsPath, raw, nil)
		if err != nil {
			return err
		}
		return equal("status", status, http.StatusBadRequest)
	})
}

func purgeOptionsAre(got *iam.PurgeOptions, want iam.PurgeOptions) error {
	if got == nil {
		return fmt.Errorf("no purgeOptions")
	}
	return all(
		equal("purgeOptions.canPurgeByCacheTag", got.CanPurgeByCacheTag, want.CanPurgeByCacheTag),
		equal("purgeOptions.canPurgeByCpcode", got.CanPurgeByCPCode, want.CanPurgeByCPCode),
		equal("purgeOptions.cpcodeAccess.allCurrentAndNewCpcodes",
			got.CPCodeAccess.AllCurrentAndNewCPCodes, want.CPCodeAccess.AllCurrentAndNewCPCodes),
		expect(slices.Equal(got.CPCodeAccess.CPCodes, want.CPCodeAccess.CPCodes) ||
			len(got.CPCodeAccess.CPCodes)+len(want.CPCodeAccess.CPCodes) == 0,
			"purgeOptions.cpcodeAccess.cpcodes is %v, want %v", got.CPCodeAccess.CPCodes, want.CPCodeAccess.CPCodes),
	)
}

func (s *suite) lockChecks() {
	s.check("lock: PUT lock locks the client", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		got, err := s.admin.iam.LockAPIClient(s.ctx, iam.LockAPIClientRequest{ClientID: s.main.ClientID})
		if err != nil {
			return err
		}
		return all(equal("clientId", got.ClientID, s.main.ClientID), equal("isLocked", got.IsLocked, true))
	})
	s.check("lock: actions offer unlock instead of lock", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		got, err := s.admin.iam.GetAPIClient(s.ctx, iam.GetAPIClientRequest{ClientID: s.main.ClientID, Actions: true})
		if err != nil {
			return err
		}
		if got.Actions == nil {
			return fmt.Errorf("no actions")
		}
		return all(equal("actions.lock", got.Actions.Lock, false), equal("actions.unlock", got.Actions.Unlock, true))
	})
	s.check("lock: a locked client's credential is refused", func() error {
		if s.mainSigner == nil {
			return missing("the created credential")
		}
		return isRefused(s.ctx, s.mainSigner)
	})
	s.check("lock: a locked client cannot be updated", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		_, err := s.admin.iam.UpdateAPIClient(s.ctx, iam.UpdateAPIClientRequest{ClientID: s.main.ClientID, Body: iam.UpdateAPIClientRequestBody{
			APIAccess:       iam.APIAccessRequest{AllAccessibleAPIs: true},
			AuthorizedUsers: []string{authorizedUser},
			ClientName:      s.main.ClientName,
			ClientType:      iam.ClientClientType,
			GroupAccess:     iam.GroupAccessRequest{CloneAuthorizedUserGroups: true},
		}})
		return refused(err)
	})
	s.check("unlock: PUT unlock unlocks the client", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		got, err := s.admin.iam.UnlockAPIClient(s.ctx, iam.UnlockAPIClientRequest{ClientID: s.main.ClientID})
		if err != nil {
			return err
		}
		return equal("isLocked", got.IsLocked, false)
	})
	s.check("unlock: the credential signs again", func() error {
		if s.mainSigner == nil {
			return missing("the created credential")
		}
		return authenticatesAs(s.ctx, s.mainSigner, s.main.ClientID)
	})
	s.check("unlock: there is no self/unlock", func() error {
		_, err := s.admin.iam.UnlockAPIClient(s.ctx, iam.UnlockAPIClientRequest{ClientID: "self"})
		return refusedWith(err, http.StatusNotFound)
	})
	s.selfLockChecks()
}

// selfLockChecks lock a client with its own credential (LockAPIClient without an id is
// `self/lock`); only someone else can unlock it.
func (s *suite) selfLockChecks() {
	var id string
	var self *client
	s.check("lock self: a client locks itself", func() error {
		request := basicRequest(uniqueName("sdk-self-lock"))
		request.CreateCredential = true
		created, err := s.admin.iam.CreateAPIClient(s.ctx, request)
		if err != nil {
			return err
		}
		if len(created.Credentials) != 1 {
			return fmt.Errorf("%d credentials, want 1", len(created.Credentials))
		}
		c := created.Credentials[0]
		if self, err = s.signerFor(created.AccessToken, c.ClientToken, c.ClientSecret, ""); err != nil {
			return err
		}
		id = created.ClientID
		got, err := self.iam.LockAPIClient(s.ctx, iam.LockAPIClientRequest{})
		if err != nil {
			return err
		}
		return all(equal("clientId", got.ClientID, id), equal("isLocked", got.IsLocked, true))
	})
	s.check("lock self: its own credential is then refused", func() error {
		if self == nil {
			return missing("the self-locked client")
		}
		return isRefused(s.ctx, self)
	})
	s.check("unlock: the admin unlocks the self-locked client", func() error {
		if self == nil {
			return missing("the self-locked client")
		}
		if _, err := s.admin.iam.UnlockAPIClient(s.ctx, iam.UnlockAPIClientRequest{ClientID: id}); err != nil {
			return err
		}
		return authenticatesAs(s.ctx, self, id)
	})
	s.check("credentials: a client creates and lists its own (self)", func() error {
		if self == nil {
			return missing("the self-locked client")
		}
		created, err := self.iam.CreateCredential(s.ctx, iam.CreateCredentialRequest{})
		if err != nil {
			return err
		}
		list, err := self.iam.ListCredentials(s.ctx, iam.ListCredentialsRequest{})
		if err != nil {
			return err
		}
		return all(
			expect(created.ClientSecret != "", "no clientSecret"),
			equal("credentials listed", len(list), 2),
		)
	})
	s.check("get self: editSwitchAccount false for a client that may not switch", func() error {
		if self == nil {
			return missing("the self-locked client")
		}
		me, err := self.iam.GetAPIClient(s.ctx, iam.GetAPIClientRequest{Actions: true})
		if err != nil {
			return err
		}
		if me.Actions == nil {
			return fmt.Errorf("no actions")
		}
		return equal("actions.editSwitchAccount", me.Actions.EditSwitchAccount, false)
	})
}
