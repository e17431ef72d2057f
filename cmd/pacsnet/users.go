package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pacsnet/pacsnet/access"
	"github.com/pacsnet/pacsnet/api"
)

// userCmd manages local user accounts (issue 8).
func userCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "user",
		Short: "Manage local users: add, list, disable, passwd, role",
		Long: `Manage the node's local users. Each has one role: admin (partners, grants,
users, DICOM AEs, the audit), clinician (studies: import, view, export,
fetch, send) or auditor (reads and verifies the audit trail, nothing else).
A user logs in to the web app with a password, or uses an API token
('pacsnet token add'). Users are never deleted, only disabled, so the
user ID each audit entry names stays unique.`,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q", args[0], c.CommandPath())}
			}
			return usageError{fmt.Errorf("%s: want a subcommand: add, list, disable, passwd or role", c.CommandPath())}
		},
	}
	var role string
	var pwStdin bool
	add := &cobra.Command{
		Use:   "add NAME --role ROLE [--password-stdin]",
		Short: "Add a user; prints a generated one-time password once",
		Long: `Add a user with a role. The node generates a password and this command
prints it once (it is stored only as an argon2id hash); with
--password-stdin the first line of stdin is the password (8-1024 bytes).
A name is 1-64 of a-z 0-9 . _ -.`,
		Args: exactArgs(1, "one user name"),
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains(api.RolesAll, role) {
				return usageError{fmt.Errorf("user add: --role %s: want admin, clinician or auditor", printable(role))}
			}
			req := api.AddUserRequest{Name: args[0], Role: role}
			if pwStdin {
				pw, err := readPassword(c.InOrStdin())
				if err != nil {
					return usageError{fmt.Errorf("user add: %w", err)}
				}
				req.Password = pw
			}
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			res, err := cl.AddUser(c.Context(), req)
			if err != nil {
				return fmt.Errorf("user add: %w", err)
			}
			if g.json {
				return printJSON(res)
			}
			fmt.Printf("added user %s (%s, id %s)\n", printable(res.Account.Name), res.Account.Role, res.Account.UserID)
			printPassword(res)
			return nil
		},
	}
	add.Flags().StringVar(&role, "role", "", "admin, clinician or auditor (required)")
	add.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the password from the first line of stdin instead of generating one")
	required(add, "role")
	addJSON(add, g)

	list := &cobra.Command{
		Use:   "list",
		Short: "List the users with their roles",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			us, err := cl.Users(c.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(us)
			}
			tw := table("NAME", "ROLE", "STATE", "USER ID", "CREATED", "PASSWORD SET")
			for _, u := range us {
				state := "active"
				if u.Disabled {
					state = "disabled"
				}
				tw.row(printable(u.Name), printable(u.Role), state, printable(u.UserID), fmtTime(u.Created), fmtTime(u.PasswordSet))
			}
			return tw.Flush()
		},
	}
	addJSON(list, g)

	disable := &cobra.Command{
		Use:   "disable NAME",
		Short: "Disable a user: its tokens and sessions stop working at once",
		Args:  exactArgs(1, "one user name"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			u, err := cl.DisableUser(c.Context(), args[0])
			if err != nil {
				return fmt.Errorf("user disable: %w", err)
			}
			if g.json {
				return printJSON(u)
			}
			fmt.Printf("disabled user %s: its tokens and sessions no longer work\n", printable(u.Name))
			return nil
		},
	}
	addJSON(disable, g)

	var pwStdin2 bool
	passwd := &cobra.Command{
		Use:   "passwd NAME [--password-stdin]",
		Short: "Set a user's password (generated and printed once, or from stdin); its sessions end",
		Args:  exactArgs(1, "one user name"),
		RunE: func(c *cobra.Command, args []string) error {
			var req api.PasswordRequest
			if pwStdin2 {
				pw, err := readPassword(c.InOrStdin())
				if err != nil {
					return usageError{fmt.Errorf("user passwd: %w", err)}
				}
				req.Password = pw
			}
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			res, err := cl.SetPassword(c.Context(), args[0], req)
			if err != nil {
				return fmt.Errorf("user passwd: %w", err)
			}
			if g.json {
				return printJSON(res)
			}
			fmt.Printf("set the password of %s; its sessions ended\n", printable(res.Account.Name))
			printPassword(res)
			return nil
		},
	}
	passwd.Flags().BoolVar(&pwStdin2, "password-stdin", false, "read the password from the first line of stdin instead of generating one")
	addJSON(passwd, g)

	setRole := &cobra.Command{
		Use:   "role NAME ROLE",
		Short: "Change a user's role",
		Args:  exactArgs(2, "a user name and a role"),
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains(api.RolesAll, args[1]) {
				return usageError{fmt.Errorf("user role: %s: want admin, clinician or auditor", printable(args[1]))}
			}
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			u, err := cl.SetRole(c.Context(), args[0], args[1])
			if err != nil {
				return fmt.Errorf("user role: %w", err)
			}
			if g.json {
				return printJSON(u)
			}
			fmt.Printf("%s is now %s\n", printable(u.Name), u.Role)
			return nil
		},
	}
	addJSON(setRole, g)
	c.AddCommand(add, list, disable, passwd, setRole)
	return c
}

func printPassword(res api.UserPassword) {
	if res.Password == "" {
		return
	}
	fmt.Printf("one-time password: %s\n(shown only now: give it to %s by a safe channel)\n", res.Password, printable(res.Account.Name))
}

// readPassword reads the first line of r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, access.MaxPasswordLen+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if err := access.CheckPassword(line); err != nil {
		return "", fmt.Errorf("--password-stdin: %w", err)
	}
	return line, nil
}

// tokenCmd manages users' API tokens.
func tokenCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "token",
		Short: "Manage users' API tokens: add, list, revoke",
		Long: `Manage the API tokens users call the node's API with
(Authorization: Bearer TOKEN; the CLI sends $PACSNET_TOKEN when set). A
token acts as its user, in the user's current role; it expires (default
30d, at most users.max_token_ttl) and stops working at once when revoked
or when its user is disabled. The node keeps only its SHA-256.`,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q for %q", args[0], c.CommandPath())}
			}
			return usageError{fmt.Errorf("%s: want a subcommand: add, list or revoke", c.CommandPath())}
		},
	}
	var req api.AddTokenRequest
	add := &cobra.Command{
		Use:   "add --user NAME [--expires 30d]",
		Short: "Issue an API token for a user; prints it once",
		Args:  exactArgs(0, "no arguments; name the user with --user"),
		RunE: func(c *cobra.Command, args []string) error {
			if req.Expires != "" {
				if d, err := api.ParseDuration(req.Expires); err != nil || d <= 0 {
					return usageError{fmt.Errorf("token add: --expires %s: want a positive duration such as 30d or 12h", printable(req.Expires))}
				}
			}
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			res, err := cl.AddToken(c.Context(), req)
			if err != nil {
				return fmt.Errorf("token add: %w", err)
			}
			if g.json {
				return printJSON(res)
			}
			fmt.Printf("token %s for %s, expires %s (shown only now; the node keeps only its hash):\n%s\n",
				res.Token.TokenID, printable(res.Token.User), fmtTime(res.Token.Expires), res.Secret)
			return nil
		},
	}
	add.Flags().StringVar(&req.User, "user", "", "the user the token acts as (required)")
	add.Flags().StringVar(&req.Expires, "expires", "", "lifetime, e.g. 30d or 12h (default users.token_ttl, 30d)")
	required(add, "user")
	addJSON(add, g)

	list := &cobra.Command{
		Use:   "list",
		Short: "List the API tokens (never their secrets)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			ts, err := cl.Tokens(c.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(ts)
			}
			tw := table("TOKEN ID", "USER", "STATE", "CREATED", "EXPIRES")
			for _, t := range ts {
				state := "active"
				if t.Expired {
					state = "expired"
				}
				tw.row(printable(t.TokenID), printable(t.User), state, fmtTime(t.Created), fmtTime(t.Expires))
			}
			return tw.Flush()
		},
	}
	addJSON(list, g)

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token: it stops working at once",
		Args:  exactArgs(1, "one token ID"),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := newClient(g.home)
			if err != nil {
				return err
			}
			t, err := cl.RevokeToken(c.Context(), args[0])
			if err != nil {
				return fmt.Errorf("token revoke: %w", err)
			}
			if g.json {
				return printJSON(t)
			}
			fmt.Printf("revoked token %s of %s\n", printable(t.TokenID), printable(t.User))
			return nil
		},
	}
	addJSON(revoke, g)
	c.AddCommand(add, list, revoke)
	return c
}
