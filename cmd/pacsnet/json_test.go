package main

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pacsnet/pacsnet/api"
	"github.com/pacsnet/pacsnet/cmd/internal/facility"
)

// TestJSONOutputs runs every command that has --json against real nodes,
// in an order that gives each something to report, and decodes its stdout
// into the api type it promises (docs/api.md, "Command output") with
// unknown fields disallowed: a command that printed a map, an ad-hoc
// struct or a field under another name fails here.
func TestJSONOutputs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	c := newCluster(t)
	stMary := c.facility("St Mary")
	riverside := c.facility("Riverside")
	if err := facility.Partner(stMary, riverside); err != nil {
		t.Fatal(err)
	}
	fresh := facility.New(c.bin, c.dir, "Clinic Nord") // init only
	ct, exp := filepath.Join(c.dir, "ct"), filepath.Join(c.dir, "export")

	var (
		initRes  api.InitResult
		syn      api.SynthResult
		ver      api.Version
		listed   []api.Partner
		status   api.Status
		inv      api.Invite
		peers    []api.Partner
		imp      api.ImportReport
		studies  []api.Study
		grant    api.Grant
		grants   []api.Grant
		shared   []api.SharedStudy
		fetch    api.FetchReport
		fetched  []api.Study
		online   []api.Partner
		busy     api.Status
		export   api.ExportResult
		rev      api.Revocation
		audit    []api.AuditEntry
		verify   api.AuditVerify
		added    api.Partner
		removed  api.PartnerRemoved
		riverInv api.Invite
		aeAdded  api.AE
		aes      []api.AE
		aeGone   api.AE
	)
	var (
		userAdded  api.UserPassword
		users      []api.User
		userOff    api.User
		userPw     api.UserPassword
		userRole   api.User
		tokIssued  api.TokenIssued
		tokens     []api.Token
		tokRevoked api.Token
	)
	steps := []struct {
		name  string
		f     *facility.Facility
		args  func() []string
		out   any // a pointer to the promised api type
		check func() string
	}{
		{"init", fresh, args("init", "--name", "Clinic Nord", "--ae", "NORD"), &initRes, func() string {
			return want(initRes.Name == "Clinic Nord" && initRes.AETitle == "NORD" && initRes.Home == fresh.Home, initRes)
		}},
		{"synth", stMary, args("synth", "--out", ct, "--slices", "3", "--size", "64"), &syn, func() string {
			return want(syn.Files == 3 && strings.HasPrefix(syn.StudyUID, "2.25.") && syn.Dir == ct, syn)
		}},
		{"version", stMary, args("version"), &ver, func() string {
			return want(ver.Version != "" && strings.HasPrefix(ver.Go, "go1."), ver)
		}},
		{"peer list", stMary, args("peer", "list"), &listed, func() string {
			return want(len(listed) == 1 && listed[0].Name == "Riverside", listed)
		}},
		{"status", stMary, args("status"), &status, func() string {
			return want(status.Name == "St Mary" && status.AETitle == "STMARY" && status.PeerID != "" && status.Partners == 1 && len(status.P2P) > 0, status)
		}},
		{"invite", stMary, args("invite"), &inv, func() string {
			return want(strings.HasPrefix(inv.Invite, "pacsnet-invite-1:"), inv)
		}},
		{"peers", stMary, args("peers"), &peers, func() string {
			return want(len(peers) == 1 && peers[0].Name == "Riverside" && peers[0].PeerID != "" && !peers[0].Added.IsZero(), peers)
		}},
		{"import", stMary, args("import", ct), &imp, func() string {
			return want(len(imp.Results) == 3 && imp.Summary[api.OutcomeStored] == 3 && imp.Results[0].StudyUID == syn.StudyUID && imp.Bytes > 0, imp)
		}},
		{"studies", stMary, args("studies"), &studies, func() string {
			return want(len(studies) == 1 && studies[0].StudyUID == syn.StudyUID && studies[0].Origin == nil && studies[0].Instances == 3 && studies[0].Complete, studies)
		}},
		{"grant", stMary, func() []string {
			return []string{"grant", "--to", "Riverside", "--study", syn.StudyUID, "--expires", "2h"}
		}, &grant, func() string {
			return want(grant.GrantID != "" && grant.Grantee.Name == "Riverside" && grant.Issuer.PeerID == status.PeerID &&
				reflect.DeepEqual(grant.StudyUIDs, []string{syn.StudyUID}) && grant.State == api.GrantActive &&
				grant.Purpose == api.PurposeTreatment && len(grant.Signed) > 0, grant)
		}},
		{"grants", stMary, args("grants"), &grants, func() string {
			return want(len(grants) == 1 && grants[0].GrantID == grant.GrantID, grants)
		}},
		{"shared", riverside, func() []string {
			waitFor(t, "the manifest at Riverside", 30*time.Second, func() bool { return sharedState(t, riverside, syn.StudyUID) == api.SharedAvailable })
			return []string{"shared"}
		}, &shared, func() string {
			return want(len(shared) == 1 && shared[0].StudyUID == syn.StudyUID && shared[0].Issuer.Name == "St Mary" &&
				shared[0].GrantID == grant.GrantID && shared[0].Instances == 3 && !shared[0].Fetched, shared)
		}},
		// fetch names the study by a prefix of its UID, as `shared` shows it.
		{"fetch", riverside, func() []string { return []string{"fetch", "--study", syn.StudyUID[:16]} }, &fetch, func() string {
			return want(fetch.Fetch.StudyUID == syn.StudyUID && fetch.Fetch.State == api.FetchDone && fetch.Fetch.FetchID != "" && fetch.Fetch.Holder.Name == "St Mary" &&
				fetch.Fetch.InstancesDone == 3 && fetch.BytesFetched == fetch.Fetch.Bytes, fetch)
		}},
		{"studies after fetch", riverside, args("studies"), &fetched, func() string {
			return want(len(fetched) == 1 && fetched[0].Origin != nil && fetched[0].Origin.Name == "St Mary" && fetched[0].Complete, fetched)
		}},
		// After the exchange the partners are connected: online in peers
		// and status (issue 6, #17).
		{"peers after fetch", riverside, args("peers"), &online, func() string {
			return want(len(online) == 1 && online[0].Name == "St Mary" && online[0].Online && !online[0].LastSeen.IsZero(), online)
		}},
		{"status after fetch", riverside, args("status"), &busy, func() string {
			return want(busy.Health == api.HealthOK && busy.PartnersOnline == 1 && len(busy.PartnerStates) == 1 &&
				busy.PartnerStates[0].Name == "St Mary" && busy.PartnerStates[0].Online && busy.DiskFree > 0 &&
				busy.ArchiveBytes >= 0 && len(busy.Fetches) == 0, busy)
		}},
		{"export", riverside, func() []string { return []string{"export", "--study", syn.StudyUID, "--out", exp} }, &export, func() string {
			return want(export.StudyUID == syn.StudyUID && export.Out == exp && len(export.Files) == 3 && export.Verified == 3, export)
		}},
		{"revoke", stMary, func() []string { return []string{"revoke", grant.GrantID, "--reason", "treatment-ended"} }, &rev, func() string {
			return want(rev.GrantID == grant.GrantID && rev.Reason == "treatment-ended" && len(rev.Signed) > 0, rev)
		}},
		{"audit", stMary, args("audit"), &audit, func() string {
			granted := false
			for _, e := range audit {
				granted = granted || e.Action == api.ActGrant && e.GrantID == grant.GrantID && e.Peer != nil && e.Peer.PeerID == grant.Grantee.PeerID
			}
			return want(len(audit) > 0 && audit[0].Seq == 1 && granted, audit)
		}},
		{"audit --verify", stMary, args("audit", "--verify"), &verify, func() string {
			// The revocation's delivery may add an entry in between.
			return want(verify.OK && verify.Entries >= uint64(len(audit)) && len(verify.Head) == 64, verify)
		}},
		{"peer add", stMary, func() []string {
			mustJSON(t, riverside, &riverInv, "invite")
			return []string{"peer", "add", riverInv.Invite} // again: updates the partner
		}, &added, func() string {
			return want(added.Name == "Riverside" && added.PeerID == peers[0].PeerID, added)
		}},
		{"peer remove", stMary, args("peer", "remove", "Riverside"), &removed, func() string {
			return want(removed.Name == "Riverside" && removed.PeerID == peers[0].PeerID, removed)
		}},
		{"ae add", stMary, args("ae", "add", "CT_ROOM1", "--host", "127.0.0.1", "--port", "104", "--restrict-address"), &aeAdded, func() string {
			return want(aeAdded.Title == "CT_ROOM1" && aeAdded.Port == 104 && aeAdded.RestrictAddress && aeAdded.Source == api.AESourceAPI && !aeAdded.Added.IsZero(), aeAdded)
		}},
		{"ae list", stMary, args("ae", "list"), &aes, func() string {
			return want(len(aes) == 1 && aes[0].Title == "CT_ROOM1", aes)
		}},
		{"ae remove", stMary, args("ae", "remove", "CT_ROOM1"), &aeGone, func() string {
			return want(aeGone.Title == "CT_ROOM1" && aeGone.Host == "127.0.0.1", aeGone)
		}},
		{"user add", stMary, args("user", "add", "alice", "--role", "clinician"), &userAdded, func() string {
			return want(userAdded.Account.Name == "alice" && userAdded.Account.Role == api.RoleClinician && len(userAdded.Password) > 30, userAdded)
		}},
		{"user list", stMary, args("user", "list"), &users, func() string {
			return want(len(users) == 1 && users[0].UserID == userAdded.Account.UserID, users)
		}},
		{"user role", stMary, args("user", "role", "alice", "auditor"), &userRole, func() string {
			return want(userRole.Role == api.RoleAuditor, userRole)
		}},
		{"user passwd", stMary, args("user", "passwd", "alice"), &userPw, func() string {
			return want(userPw.Password != "" && userPw.Password != userAdded.Password, userPw)
		}},
		{"token add", stMary, args("token", "add", "--user", "alice", "--expires", "7d"), &tokIssued, func() string {
			return want(tokIssued.Token.User == "alice" && strings.HasPrefix(tokIssued.Secret, "pnt_"), tokIssued)
		}},
		{"token list", stMary, args("token", "list"), &tokens, func() string {
			return want(len(tokens) == 1 && tokens[0].TokenID == tokIssued.Token.TokenID && !tokens[0].Expired, tokens)
		}},
		{"token revoke", stMary, func() []string { return []string{"token", "revoke", tokIssued.Token.TokenID} }, &tokRevoked, func() string {
			return want(tokRevoked.TokenID == tokIssued.Token.TokenID, tokRevoked)
		}},
		{"user disable", stMary, args("user", "disable", "alice"), &userOff, func() string {
			return want(userOff.Disabled, userOff)
		}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			a := s.args()
			out, err := s.f.Run(append(a, "--json")...)
			if err != nil {
				t.Fatal(err)
			}
			if err := facility.DecodeJSON(out, s.out); err != nil {
				t.Fatalf("pacsnet %s --json: %v\n%s", strings.Join(a, " "), err, out)
			}
			if msg := s.check(); msg != "" {
				t.Fatalf("pacsnet %s --json: %s", strings.Join(a, " "), msg)
			}
		})
	}
}

func args(a ...string) func() []string { return func() []string { return a } }

// want is "" when ok, else what was got instead.
func want(ok bool, got any) string {
	if ok {
		return ""
	}
	return fmt.Sprintf("unexpected %T: %+v", got, got)
}
