package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/akamai/AkamaiOPEN-edgegrid-golang/v11/pkg/iam"
)

const clientsPath = "/identity-management/v3/api-clients"

// basicRequest is the smallest create body: every API and the authorized user's groups.
func basicRequest(name string) iam.CreateAPIClientRequest {
	return iam.CreateAPIClientRequest{
		APIAccess:       iam.APIAccessRequest{AllAccessibleAPIs: true},
		AuthorizedUsers: []string{authorizedUser},
		ClientName:      name,
		ClientType:      iam.ClientClientType,
		GroupAccess:     iam.GroupAccessRequest{CloneAuthorizedUserGroups: true},
	}
}

// mainRequest sets every field the create body has.
func mainRequest() iam.CreateAPIClientRequest {
	return iam.CreateAPIClientRequest{
		APIAccess: iam.APIAccessRequest{APIs: []iam.APIRequestItem{
			{APIID: apiSearchDataFeed, AccessLevel: iam.ReadWriteLevel},
			{APIID: apiEdgeWorkers, AccessLevel: iam.ReadOnlyLevel},
		}},
		AuthorizedUsers:         []string{authorizedUser},
		CanAutoCreateCredential: true,
		ClientDescription:       "made by the Akamai SDK conformance check",
		ClientName:              uniqueName("sdk-main"),
		ClientType:              iam.ClientClientType,
		CreateCredential:        true,
		GroupAccess: iam.GroupAccessRequest{Groups: []iam.ClientGroupRequestItem{
			{GroupID: groupTop, RoleID: roleEditor},
		}},
		// Loopback, so the client's own requests stay inside the list should it be enforced.
		IPACL:              &iam.IPACL{Enable: true, CIDR: []string{"127.0.0.1/32"}},
		NotificationEmails: []string{"sdk@example.com"},
	}
}

func (s *suite) adminChecks() {
	id := s.store.ids.ClientID
	s.check("get self: the bootstrap admin client", func() error {
		me, err := s.admin.iam.GetAPIClient(s.ctx, iam.GetAPIClientRequest{})
		if err != nil {
			return err
		}
		return all(
			equal("clientId", me.ClientID, id),
			equal("allowAccountSwitch", me.AllowAccountSwitch, true),
			equal("isLocked", me.IsLocked, false),
			expect(me.ActiveCredentialCount >= 1, "activeCredentialCount is %d", me.ActiveCredentialCount),
		)
	})
	s.check("get self: without options no actions, credentials or ipAcl", func() error {
		me, err := s.admin.iam.GetAPIClient(s.ctx, iam.GetAPIClientRequest{})
		if err != nil {
			return err
		}
		return withoutDetails(me)
	})
	s.check("get self: actions carry editApis, editAuth, editGroups and editIpAcl", func() error {
		me, err := s.admin.iam.GetAPIClient(s.ctx, iam.GetAPIClientRequest{Actions: true})
		if err != nil {
			return err
		}
		return unlockedActions(me.Actions)
	})
	s.check("get self: editSwitchAccount for a client that may switch accounts", func() error {
		me, err := s.admin.iam.GetAPIClient(s.ctx, iam.GetAPIClientRequest{Actions: true})
		if err != nil {
			return err
		}
		if me.Actions == nil {
			return fmt.Errorf("no actions")
		}
		return equal("actions.editSwitchAccount", me.Actions.EditSwitchAccount, true)
	})
	s.check("get self: allAccessibleApis lists the APIs with their details", func() error {
		me, err := s.admin.iam.GetAPIClient(s.ctx, iam.GetAPIClientRequest{APIAccess: true})
		if err != nil {
			return err
		}
		return all(
			equal("apiAccess.allAccessibleApis", me.APIAccess.AllAccessibleAPIs, true),
			expect(len(me.APIAccess.APIs) >= 2, "apiAccess.apis has %d entries", len(me.APIAccess.APIs)),
			describedAPIs(me.APIAccess.APIs),
		)
	})
	s.check("get self: cloned groups carry ids, names and roles", func() error {
		me, err := s.admin.iam.GetAPIClient(s.ctx, iam.GetAPIClientRequest{GroupAccess: true})
		if err != nil {
			return err
		}
		return all(
			equal("groupAccess.cloneAuthorizedUserGroups", me.GroupAccess.CloneAuthorizedUserGroups, true),
			expect(len(me.GroupAccess.Groups) >= 1, "groupAccess.groups is empty"),
			describedGroups(me.GroupAccess.Groups),
		)
	})
}

func (s *suite) createChecks() {
	request := mainRequest()
	s.check("create: a client with every setting", func() error {
		created, err := s.admin.iam.CreateAPIClient(s.ctx, request)
		if err != nil {
			return err
		}
		s.main = created
		return all(
			expect(created.ClientID != "", "no clientId"),
			equal("clientName", created.ClientName, request.ClientName),
		)
	})
	s.check("create: settings echoed", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		m := s.main
		return all(
			equal("clientType", m.ClientType, iam.ClientClientType),
			equal("authorizedUsers", strings.Join(m.AuthorizedUsers, ","), authorizedUser),
			equal("notificationEmails", strings.Join(m.NotificationEmails, ","), "sdk@example.com"),
			equal("canAutoCreateCredential", m.CanAutoCreateCredential, true),
			equal("clientDescription", m.ClientDescription, request.ClientDescription),
			equal("allowAccountSwitch", m.AllowAccountSwitch, false),
			equal("isLocked", m.IsLocked, false),
			expect(m.BaseURL != "", "no baseURL"),
			expect(m.CreatedBy != "", "no createdBy"),
			expect(time.Since(m.CreatedDate).Abs() < time.Hour, "createdDate %s is not now", m.CreatedDate),
		)
	})
	s.check("create: apiAccess apis carry the API details", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		return grants(s.main.APIAccess.APIs, map[int64]iam.AccessLevel{
			apiSearchDataFeed: iam.ReadWriteLevel,
			apiEdgeWorkers:    iam.ReadOnlyLevel,
		})
	})
	s.check("create: groups carry names and roles", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		return groupGrant(s.main.GroupAccess.Groups, groupTop, roleEditor)
	})
	s.check("create: ipAcl echoed", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		return ipACLIs(s.main.IPACL, true, "127.0.0.1/32")
	})
	s.check("create: createCredential issues one credential with its secret", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		if len(s.main.Credentials) != 1 {
			return fmt.Errorf("%d credentials, want 1", len(s.main.Credentials))
		}
		c := s.main.Credentials[0]
		return all(
			expect(c.ClientSecret != "", "no clientSecret"),
			expect(strings.HasPrefix(c.ClientToken, "akab-"), "clientToken does not start with akab-"),
			expect(c.CredentialID > 0, "credentialId is %d", c.CredentialID),
			equal("status", c.Status, iam.CredentialActive),
			equal("activeCredentialCount", s.main.ActiveCredentialCount, int64(1)),
		)
	})
	s.check("create: the credential expires two years after creation", func() error {
		if s.main == nil || len(s.main.Credentials) == 0 {
			return missing("the created credential")
		}
		c := s.main.Credentials[0]
		lifetime := c.ExpiresOn.Sub(c.CreatedOn)
		return expect(lifetime >= 729*24*time.Hour && lifetime <= 732*24*time.Hour,
			"expiresOn is %s after createdOn", lifetime)
	})
	s.check("create: actions of an unlocked client", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		if err := unlockedActions(s.main.Actions); err != nil {
			return err
		}
		return equal("actions.editSwitchAccount (the caller may switch)", s.main.Actions.EditSwitchAccount, true)
	})
	s.check("signing: a freshly minted credential signs requests", func() error {
		if s.main == nil || len(s.main.Credentials) == 0 {
			return missing("the created credential")
		}
		c := s.main.Credentials[0]
		signer, err := s.signerFor(s.main.AccessToken, c.ClientToken, c.ClientSecret, "")
		if err != nil {
			return err
		}
		s.mainSigner = signer
		return authenticatesAs(s.ctx, signer, s.main.ClientID)
	})
	s.check("create: the SDK's empty clientName gets a generated name", func() error {
		created, err := s.admin.iam.CreateAPIClient(s.ctx, basicRequest(""))
		if err != nil {
			return err
		}
		return expect(created.ClientName != "", "clientName is empty")
	})
	s.check("create: SERVICE_ACCOUNT refused (not a type create makes)", func() error {
		request := basicRequest(uniqueName("sdk-service"))
		request.ClientType = iam.ServiceAccountClientType
		_, err := s.admin.iam.CreateAPIClient(s.ctx, request)
		return refusedWith(err, http.StatusBadRequest)
	})
	s.check("create: two authorized users refused for CLIENT", func() error {
		request := basicRequest(uniqueName("sdk-two-users"))
		request.AuthorizedUsers = []string{authorizedUser, "another-user"}
		_, err := s.admin.iam.CreateAPIClient(s.ctx, request)
		return refusedWith(err, http.StatusBadRequest)
	})
}

func (s *suite) getAndListChecks() {
	s.check("get: every option", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		got, err := s.admin.iam.GetAPIClient(s.ctx, iam.GetAPIClientRequest{
			ClientID: s.main.ClientID, Actions: true, GroupAccess: true, APIAccess: true, Credentials: true, IPACL: true,
		})
		if err != nil {
			return err
		}
		if len(got.Credentials) != 1 {
			return fmt.Errorf("%d credentials, want 1", len(got.Credentials))
		}
		return all(
			expect(got.Actions != nil, "no actions"),
			equal("apiAccess.apis entries", len(got.APIAccess.APIs), 2),
			groupGrant(got.GroupAccess.Groups, groupTop, roleEditor),
			ipACLIs(got.IPACL, true, "127.0.0.1/32"),
			equal("credentials[0].clientToken", got.Credentials[0].ClientToken, s.main.Credentials[0].ClientToken),
			equal("credentials[0].actions.deactivate", got.Credentials[0].Actions.Deactivate, true),
		)
	})
	s.check("get: credentials never carry the secret", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		var got struct {
			Credentials []map[string]any `json:"credentials"`
		}
		status, err := s.admin.raw(s.ctx, http.MethodGet, clientsPath+"/"+s.main.ClientID+"?credentials=true", nil, &got)
		if err != nil {
			return err
		}
		return all(equal("status", status, http.StatusOK), noSecrets(got.Credentials))
	})
	s.check("get: apiAccess alone leaves groups out", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		got, err := s.admin.iam.GetAPIClient(s.ctx, iam.GetAPIClientRequest{ClientID: s.main.ClientID, APIAccess: true})
		if err != nil {
			return err
		}
		return all(
			equal("apiAccess.apis entries", len(got.APIAccess.APIs), 2),
			equal("groupAccess.groups entries", len(got.GroupAccess.Groups), 0),
		)
	})
	s.check("get: groupAccess alone leaves APIs out", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		got, err := s.admin.iam.GetAPIClient(s.ctx, iam.GetAPIClientRequest{ClientID: s.main.ClientID, GroupAccess: true})
		if err != nil {
			return err
		}
		return all(
			equal("groupAccess.groups entries", len(got.GroupAccess.Groups), 1),
			equal("apiAccess.apis entries", len(got.APIAccess.APIs), 0),
		)
	})
	s.check("get: without options no actions, credentials or ipAcl", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		got, err := s.admin.iam.GetAPIClient(s.ctx, iam.GetAPIClientRequest{ClientID: s.main.ClientID})
		if err != nil {
			return err
		}
		return withoutDetails(got)
	})
	s.check("list: the new client with its settings and actions", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		list, err := s.admin.iam.ListAPIClients(s.ctx, iam.ListAPIClientsRequest{Actions: true})
		if err != nil {
			return err
		}
		item := findListed(list, s.main.ClientID)
		if item == nil || findListed(list, s.store.ids.ClientID) == nil {
			return fmt.Errorf("the list lacks the new client or the admin client")
		}
		if item.Actions == nil {
			return fmt.Errorf("no actions")
		}
		return all(
			equal("clientName", item.ClientName, s.main.ClientName),
			equal("activeCredentialCount", item.ActiveCredentialCount, int64(1)),
			equal("actions.lock", item.Actions.Lock, true),
		)
	})
	s.check("list: without actions no actions", func() error {
		list, err := s.admin.iam.ListAPIClients(s.ctx, iam.ListAPIClientsRequest{})
		if err != nil {
			return err
		}
		for _, item := range list {
			if item.Actions != nil {
				return fmt.Errorf("%s has actions", item.ClientID)
			}
		}
		return expect(len(list) >= 2, "%d clients listed", len(list))
	})
}

func (s *suite) accessLevelChecks() {
	s.check("create: CREDENTIAL-READ-ONLY and CREDENTIAL-READ-WRITE access levels", func() error {
		request := basicRequest(uniqueName("sdk-credential-levels"))
		request.APIAccess = iam.APIAccessRequest{APIs: []iam.APIRequestItem{
			{APIID: apiIdentity, AccessLevel: iam.CredentialReadWriteLevel},
			{APIID: apiSearchDataFeed, AccessLevel: iam.CredentialReadOnlyLevel},
		}}
		created, err := s.admin.iam.CreateAPIClient(s.ctx, request)
		if err != nil {
			return err
		}
		return grants(created.APIAccess.APIs, map[int64]iam.AccessLevel{
			apiIdentity:       iam.CredentialReadWriteLevel,
			apiSearchDataFeed: iam.CredentialReadOnlyLevel,
		})
	})
	s.check("create: the SDK's READ access level", func() error {
		request := basicRequest(uniqueName("sdk-read-level"))
		request.APIAccess = iam.APIAccessRequest{APIs: []iam.APIRequestItem{{APIID: apiEdgeWorkers, AccessLevel: iam.ReadLevel}}}
		created, err := s.admin.iam.CreateAPIClient(s.ctx, request)
		if err != nil {
			return err
		}
		return grants(created.APIAccess.APIs, map[int64]iam.AccessLevel{apiEdgeWorkers: iam.ReadLevel})
	})
	s.check("create: an unknown access level refused", func() error {
		request := basicRequest(uniqueName("sdk-bad-level"))
		request.APIAccess = iam.APIAccessRequest{APIs: []iam.APIRequestItem{{APIID: apiEdgeWorkers, AccessLevel: "ADMIN"}}}
		// The SDK's validation stops this before sending; the server must refuse it too.
		status, err := s.admin.raw(s.ctx, http.MethodPost, clientsPath, request, nil)
		if err != nil {
			return err
		}
		return equal("status", status, http.StatusBadRequest)
	})
}

func (s *suite) ipACLChecks() {
	s.check("create: ipAcl enable:false cidr:null (what the SDK and Terraform send)", func() error {
		request := basicRequest(uniqueName("sdk-no-acl"))
		request.IPACL = &iam.IPACL{Enable: false}
		created, err := s.admin.iam.CreateAPIClient(s.ctx, request)
		if sent := s.admin.transport.lastSent(); sent == nil || !strings.Contains(string(sent.body), `"ipAcl":{"cidr":null,"enable":false}`) {
			return fmt.Errorf("the SDK did not send ipAcl with cidr null")
		}
		if err != nil {
			return err
		}
		return ipACLIs(created.IPACL, false)
	})
}

func (s *suite) updateChecks() {
	body := iam.UpdateAPIClientRequestBody{
		APIAccess:         iam.APIAccessRequest{APIs: []iam.APIRequestItem{{APIID: apiEdgeWorkers, AccessLevel: iam.ReadWriteLevel}}},
		AuthorizedUsers:   []string{authorizedUser},
		ClientDescription: "replaced by the Akamai SDK conformance check",
		ClientType:        iam.ClientClientType,
		GroupAccess:       iam.GroupAccessRequest{Groups: []iam.ClientGroupRequestItem{{GroupID: groupTop, RoleID: roleViewer}}},
	}
	var updated *iam.UpdateAPIClientResponse
	s.check("update: full replace", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		body.ClientName = s.main.ClientName + "-renamed"
		got, err := s.admin.iam.UpdateAPIClient(s.ctx, iam.UpdateAPIClientRequest{ClientID: s.main.ClientID, Body: body})
		if err != nil {
			return err
		}
		updated = got
		return all(
			equal("clientName", got.ClientName, body.ClientName),
			equal("clientDescription", got.ClientDescription, body.ClientDescription),
			equal("canAutoCreateCredential", got.CanAutoCreateCredential, false),
			equal("notificationEmails entries", len(got.NotificationEmails), 0),
			grants(got.APIAccess.APIs, map[int64]iam.AccessLevel{apiEdgeWorkers: iam.ReadWriteLevel}),
			groupGrant(got.GroupAccess.Groups, groupTop, roleViewer),
		)
	})
	s.check("update: an omitted ipAcl is reset (full replace)", func() error {
		if updated == nil {
			return missing("the updated client")
		}
		if updated.IPACL == nil {
			return nil
		}
		return ipACLIs(updated.IPACL, false)
	})
	s.check("update: get shows the replaced settings, credentials kept", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		got, err := s.admin.iam.GetAPIClient(s.ctx, iam.GetAPIClientRequest{
			ClientID: s.main.ClientID, APIAccess: true, GroupAccess: true, Credentials: true,
		})
		if err != nil {
			return err
		}
		return all(
			equal("clientName", got.ClientName, body.ClientName),
			grants(got.APIAccess.APIs, map[int64]iam.AccessLevel{apiEdgeWorkers: iam.ReadWriteLevel}),
			groupGrant(got.GroupAccess.Groups, groupTop, roleViewer),
			equal("credentials", len(got.Credentials), 1),
			equal("activeCredentialCount", got.ActiveCredentialCount, int64(1)),
		)
	})
	s.check("update: createCredential is not part of an update", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		raw, err := toMap(body)
		if err != nil {
			return err
		}
		raw["createCredential"] = true
		status, err := s.admin.raw(s.ctx, http.MethodPut, clientsPath+"/"+s.main.ClientID, raw, nil)
		if err != nil {
			return err
		}
		return equal("status", status, http.StatusBadRequest)
	})
	s.check("update: the credential still signs", func() error {
		if s.mainSigner == nil {
			return missing("the created credential")
		}
		return authenticatesAs(s.ctx, s.mainSigner, s.main.ClientID)
	})
}

func (s *suite) deleteChecks() {
	s.check("delete: DELETE removes the client", func() error {
		if s.main == nil {
			return missing("the created client")
		}
		if err := s.admin.iam.DeleteAPIClient(s.ctx, iam.DeleteAPIClientRequest{ClientID: s.main.ClientID}); err != nil {
			return err
		}
		_, err := s.admin.iam.GetAPIClient(s.ctx, iam.GetAPIClientRequest{ClientID: s.main.ClientID})
		return refusedWith(err, http.StatusNotFound)
	})
	s.check("delete: its credentials stop working", func() error {
		if s.mainSigner == nil {
			return missing("the created credential")
		}
		return isRefused(s.ctx, s.mainSigner)
	})
}

// withoutDetails checks a get without options: the optional parts are left out.
func withoutDetails(got *iam.GetAPIClientResponse) error {
	return all(
		expect(got.Actions == nil, "actions present"),
		expect(len(got.Credentials) == 0, "credentials present"),
		expect(got.IPACL == nil, "ipAcl present"),
	)
}

func unlockedActions(actions *iam.APIClientActions) error {
	if actions == nil {
		return fmt.Errorf("no actions")
	}
	return all(
		equal("actions.lock", actions.Lock, true),
		equal("actions.unlock", actions.Unlock, false),
		equal("actions.edit", actions.Edit, true),
		equal("actions.delete", actions.Delete, true),
		equal("actions.editApis", actions.EditAPIs, true),
		equal("actions.editAuth", actions.EditAuth, true),
		equal("actions.editGroups", actions.EditGroups, true),
		equal("actions.editIpAcl", actions.EditIPACL, true),
	)
}

// describedAPIs checks that every API entry carries the details the SDK's API type has.
func describedAPIs(apis []iam.API) error {
	for _, api := range apis {
		if api.APIID <= 0 || api.APIName == "" || api.Endpoint == "" || api.Description == "" || api.AccessLevel == "" {
			return fmt.Errorf("API %d lacks apiName, description, endPoint or accessLevel", api.APIID)
		}
	}
	return nil
}

// grants checks that apis are exactly the wanted ids at the wanted levels, with details.
func grants(apis []iam.API, want map[int64]iam.AccessLevel) error {
	if len(apis) != len(want) {
		return fmt.Errorf("apiAccess.apis has %d entries, want %d", len(apis), len(want))
	}
	for _, api := range apis {
		level, ok := want[api.APIID]
		if !ok {
			return fmt.Errorf("unexpected API %d", api.APIID)
		}
		if api.AccessLevel != string(level) {
			return fmt.Errorf("API %d has accessLevel %s, want %s", api.APIID, api.AccessLevel, level)
		}
	}
	return describedAPIs(apis)
}

func describedGroups(groups []iam.ClientGroup) error {
	for _, group := range groups {
		if group.GroupID <= 0 || group.GroupName == "" || group.RoleID <= 0 || group.RoleName == "" || group.RoleDescription == "" {
			return fmt.Errorf("group %d lacks groupName, roleId, roleName or roleDescription", group.GroupID)
		}
	}
	return nil
}

// groupGrant checks that groups are exactly one group with one role, described.
func groupGrant(groups []iam.ClientGroup, groupID, roleID int64) error {
	if len(groups) != 1 {
		return fmt.Errorf("groupAccess.groups has %d entries, want 1", len(groups))
	}
	return all(
		equal("groupId", groups[0].GroupID, groupID),
		equal("roleId", groups[0].RoleID, roleID),
		describedGroups(groups),
	)
}

func ipACLIs(acl *iam.IPACL, enable bool, cidr ...string) error {
	if acl == nil {
		return fmt.Errorf("no ipAcl")
	}
	return all(
		equal("ipAcl.enable", acl.Enable, enable),
		expect(slices.Equal(acl.CIDR, cidr) || len(acl.CIDR)+len(cidr) == 0, "ipAcl.cidr is %v, want %v", acl.CIDR, cidr),
	)
}

func findListed(list iam.ListAPIClientsResponse, id string) *iam.ListAPIClientsItem {
	for i := range list {
		if list[i].ClientID == id {
			return &list[i]
		}
	}
	return nil
}

// noSecrets checks that no credential object names a clientSecret.
func noSecrets(credentials []map[string]any) error {
	if len(credentials) == 0 {
		return fmt.Errorf("no credentials to look at")
	}
	for _, credential := range credentials {
		if _, ok := credential["clientSecret"]; ok {
			return fmt.Errorf("credential %v carries clientSecret", credential["credentialId"])
		}
	}
	return nil
}

// toMap is v as the JSON object the SDK would send, to change before sending it raw.
func toMap(v any) (map[string]any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	return out, json.Unmarshal(data, &out)
}
