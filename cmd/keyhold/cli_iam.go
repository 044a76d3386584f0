package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyhold/keyhold/client"
)

// The identity commands (user, group, accesskey, policy, account) call the
// RAM API subset and Keyhold's account actions through the public client;
// the server decides every permission.

// maxPasswordBytes bounds a password read from a file or stdin.
const maxPasswordBytes = 1024

// ramRun builds a command body that calls one RAM (or Keyhold) action and
// renders its result.
func ramRun[T any](a *app, keyhold bool, action string, params func(args []string) (map[string]string, error), text func(*textOut, *T, []string)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		p, err := params(args)
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		out := new(T)
		if keyhold {
			err = c.Keyhold(cmd.Context(), action, p, out)
		} else {
			err = c.RAM(cmd.Context(), action, p, out)
		}
		if err != nil {
			return err
		}
		return a.emit(out, func(w *textOut) { text(w, out, args) })
	}
}

// done renders a result that has no fields of its own.
func done(format string) func(*textOut, *client.Response, []string) {
	return func(w *textOut, _ *client.Response, args []string) {
		vals := make([]any, len(args))
		for i, v := range args {
			vals[i] = v
		}
		w.line(fmt.Sprintf(format, vals...))
	}
}

func userView(w *textOut, u client.RAMUser) {
	w.kv("UserName", u.UserName)
	w.kv("UserId", u.UserId)
	w.kv("DisplayName", u.DisplayName)
	w.kv("Email", u.Email)
	w.kv("MobilePhone", u.MobilePhone)
	w.kv("Comments", u.Comments)
	w.kv("CreateDate", u.CreateDate)
	w.kv("UpdateDate", u.UpdateDate)
	w.kv("LastLoginDate", u.LastLoginDate)
}

type userFlags struct{ display, email, mobile, comments string }

func (f *userFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.display, "display-name", "", "display name")
	fl.StringVar(&f.email, "email", "", "email address")
	fl.StringVar(&f.mobile, "mobile-phone", "", "mobile phone, e.g. 86-18600008888")
	fl.StringVar(&f.comments, "comments", "", "comments")
}

func newUserCmd(a *app) *cobra.Command {
	cmd := groupCmd("user", "Manage RAM users of the account",
		`  keyhold user create alice --display-name Alice
  keyhold policy attach KeyholdSecretUser --type System --user alice
  keyhold accesskey create --user alice
  printf 'Corr3ct-Horse' | keyhold user password set alice --password-file -`)

	var cf userFlags
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a user", Args: nArgs("NAME"),
		Example: "  keyhold user create alice --display-name Alice --email alice@example.com",
		RunE: ramRun(a, false, "CreateUser", func(args []string) (map[string]string, error) {
			return map[string]string{"UserName": args[0], "DisplayName": cf.display, "Email": cf.email,
				"MobilePhone": cf.mobile, "Comments": cf.comments}, nil
		}, func(w *textOut, r *client.UserResponse, _ []string) { userView(w, r.User) }),
	}
	cf.add(create)

	get := &cobra.Command{
		Use: "get NAME", Short: "Show a user", Args: nArgs("NAME"), Example: "  keyhold user get alice",
		RunE: ramRun(a, false, "GetUser", func(args []string) (map[string]string, error) {
			return map[string]string{"UserName": args[0]}, nil
		}, func(w *textOut, r *client.UserResponse, _ []string) { userView(w, r.User) }),
	}

	var marker string
	var maxItems int
	list := &cobra.Command{
		Use: "list", Short: "List users (one page; --marker continues)", Args: noArgs,
		Example: "  keyhold user list\n  keyhold user list --max-items 50 --marker bob",
		RunE: ramRun(a, false, "ListUsers", func([]string) (map[string]string, error) {
			return pageParams(marker, maxItems), nil
		}, func(w *textOut, r *client.ListUsersResponse, _ []string) {
			rows := make([][]string, 0, len(r.Users.User))
			for _, u := range r.Users.User {
				rows = append(rows, []string{u.UserName, u.DisplayName, u.UserId, u.CreateDate})
			}
			w.table([]string{"USER", "DISPLAY NAME", "USER ID", "CREATED"}, rows)
			if r.IsTruncated {
				w.line("More: --marker " + r.Marker)
			}
		}),
	}
	list.Flags().StringVar(&marker, "marker", "", "continue after this page marker")
	list.Flags().IntVar(&maxItems, "max-items", 0, "page size, 1-1000 (default 100)")

	var uf userFlags
	var newName string
	update := &cobra.Command{
		Use: "update NAME", Short: "Change or rename a user", Args: nArgs("NAME"),
		Example: "  keyhold user update alice --new-name alice2 --comments 'moved to ops'",
		RunE: func(cmd *cobra.Command, args []string) error {
			p := map[string]string{"UserName": args[0], "NewUserName": newName}
			for flag, param := range map[string]string{"display-name": "NewDisplayName", "email": "NewEmail", "mobile-phone": "NewMobilePhone", "comments": "NewComments"} {
				if cmd.Flags().Changed(flag) {
					v, _ := cmd.Flags().GetString(flag)
					p[param] = v
				}
			}
			return ramRun(a, false, "UpdateUser", func([]string) (map[string]string, error) { return p, nil },
				func(w *textOut, r *client.UserResponse, _ []string) { userView(w, r.User) })(cmd, args)
		},
	}
	uf.add(update)
	update.Flags().StringVar(&newName, "new-name", "", "rename the user")

	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a user (refused while it has keys, a password, groups or policies)",
		Args: nArgs("NAME"), Example: "  keyhold user delete alice",
		RunE: ramRun(a, false, "DeleteUser", func(args []string) (map[string]string, error) {
			return map[string]string{"UserName": args[0]}, nil
		}, done("Deleted user %s")),
	}

	cmd.AddCommand(create, get, list, update, del, newUserPasswordCmd(a))
	return cmd
}

func pageParams(marker string, maxItems int) map[string]string {
	p := map[string]string{"Marker": marker}
	if maxItems != 0 {
		p["MaxItems"] = strconv.Itoa(maxItems)
	}
	return p
}

func newUserPasswordCmd(a *app) *cobra.Command {
	cmd := groupCmd("password", "Set or remove a user's console password",
		"  printf 'Corr3ct-Horse' | keyhold user password set alice --password-file -")
	var file string
	var reset bool
	set := &cobra.Command{
		Use:   "set NAME",
		Short: "Set a user's console password (read from --password-file or stdin, never the command line)",
		Example: `  keyhold user password set alice --password-file ./pw.txt
  printf 'Corr3ct-Horse' | keyhold user password set alice --require-reset`,
		Args: nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := a.readValue("--password-file", file, maxPasswordBytes)
			if err != nil {
				return err
			}
			pw := string(bytes.TrimRight(raw, "\r\n"))
			clear(raw)
			if pw == "" {
				return usagef("the password is empty")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			p := map[string]string{"UserName": args[0], "Password": pw}
			if cmd.Flags().Changed("require-reset") {
				p["PasswordResetRequired"] = strconv.FormatBool(reset)
			}
			ctx := cmd.Context()
			err = c.RAM(ctx, "UpdateLoginProfile", p, nil)
			if client.IsCode(err, "EntityNotExist.User.LoginProfile") {
				err = c.RAM(ctx, "CreateLoginProfile", p, nil)
			}
			if err != nil {
				return err
			}
			return a.emit(map[string]string{"UserName": args[0]}, func(w *textOut) { w.line("Set the password of user " + args[0]) })
		},
	}
	set.Flags().StringVar(&file, "password-file", "", `file holding the password, "-" for stdin`)
	set.Flags().BoolVar(&reset, "require-reset", false, "make the user change it at the next sign-in")
	del := &cobra.Command{
		Use: "delete NAME", Short: "Remove a user's console password", Args: nArgs("NAME"),
		Example: "  keyhold user password delete alice",
		RunE: ramRun(a, false, "DeleteLoginProfile", func(args []string) (map[string]string, error) {
			return map[string]string{"UserName": args[0]}, nil
		}, done("Removed the password of user %s")),
	}
	cmd.AddCommand(set, del)
	return cmd
}

func newGroupCmd(a *app) *cobra.Command {
	cmd := groupCmd("group", "Manage user groups",
		"  keyhold group create ops\n  keyhold group add-user ops alice\n  keyhold policy attach KeyholdReadOnly --type System --group ops")
	var comments string
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a group", Args: nArgs("NAME"), Example: "  keyhold group create ops --comments operators",
		RunE: ramRun(a, false, "CreateGroup", func(args []string) (map[string]string, error) {
			return map[string]string{"GroupName": args[0], "Comments": comments}, nil
		}, func(w *textOut, r *client.CreateGroupResponse, _ []string) {
			w.kv("GroupName", r.Group.GroupName)
			w.kv("Comments", r.Group.Comments)
			w.kv("CreateDate", r.Group.CreateDate)
		}),
	}
	create.Flags().StringVar(&comments, "comments", "", "comments")
	var marker string
	var maxItems int
	list := &cobra.Command{
		Use: "list", Short: "List groups", Args: noArgs, Example: "  keyhold group list --output json",
		RunE: ramRun(a, false, "ListGroups", func([]string) (map[string]string, error) {
			return pageParams(marker, maxItems), nil
		}, func(w *textOut, r *client.ListGroupsResponse, _ []string) {
			rows := make([][]string, 0, len(r.Groups.Group))
			for _, g := range r.Groups.Group {
				rows = append(rows, []string{g.GroupName, g.Comments, g.CreateDate})
			}
			w.table([]string{"GROUP", "COMMENTS", "CREATED"}, rows)
			if r.IsTruncated {
				w.line("More: --marker " + r.Marker)
			}
		}),
	}
	list.Flags().StringVar(&marker, "marker", "", "continue after this page marker")
	list.Flags().IntVar(&maxItems, "max-items", 0, "page size, 1-1000 (default 100)")
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete an empty group with no policies", Args: nArgs("NAME"), Example: "  keyhold group delete ops",
		RunE: ramRun(a, false, "DeleteGroup", func(args []string) (map[string]string, error) {
			return map[string]string{"GroupName": args[0]}, nil
		}, done("Deleted group %s")),
	}
	add := &cobra.Command{
		Use: "add-user GROUP USER", Short: "Add a user to a group", Args: nArgs("GROUP", "USER"), Example: "  keyhold group add-user ops alice",
		RunE: ramRun(a, false, "AddUserToGroup", func(args []string) (map[string]string, error) {
			return map[string]string{"GroupName": args[0], "UserName": args[1]}, nil
		}, done("Added to group %s: user %s")),
	}
	remove := &cobra.Command{
		Use: "remove-user GROUP USER", Short: "Remove a user from a group", Args: nArgs("GROUP", "USER"), Example: "  keyhold group remove-user ops alice",
		RunE: ramRun(a, false, "RemoveUserFromGroup", func(args []string) (map[string]string, error) {
			return map[string]string{"GroupName": args[0], "UserName": args[1]}, nil
		}, done("Removed from group %s: user %s")),
	}
	cmd.AddCommand(create, list, del, add, remove)
	return cmd
}

func newAccessKeyCmd(a *app) *cobra.Command {
	cmd := groupCmd("accesskey", "Manage access keys (at most two per user)",
		"  keyhold accesskey create --user alice\n  keyhold accesskey update LTAI… --status Inactive --user alice")
	var user string
	userFlag := func(c *cobra.Command) {
		c.Flags().StringVar(&user, "user", "", "the user (default: the caller itself; for the account root, its own keys)")
	}
	create := &cobra.Command{
		Use:     "create",
		Short:   "Create an access key; its secret is printed this once",
		Example: "  keyhold accesskey create --user alice --output json > alice-key.json",
		Args:    noArgs,
		RunE: ramRun(a, false, "CreateAccessKey", func([]string) (map[string]string, error) {
			return map[string]string{"UserName": user}, nil
		}, func(w *textOut, r *client.CreateAccessKeyResponse, _ []string) {
			w.kv("AccessKeyId", r.AccessKey.AccessKeyId)
			w.kv("AccessKeySecret", r.AccessKey.AccessKeySecret)
			w.kv("Status", r.AccessKey.Status)
			w.kv("CreateDate", r.AccessKey.CreateDate)
			w.line("The secret is shown only now; store it safely.")
		}),
	}
	userFlag(create)
	list := &cobra.Command{
		Use: "list", Short: "List access keys (never their secrets)", Args: noArgs, Example: "  keyhold accesskey list --user alice",
		RunE: ramRun(a, false, "ListAccessKeys", func([]string) (map[string]string, error) {
			return map[string]string{"UserName": user}, nil
		}, func(w *textOut, r *client.ListAccessKeysResponse, _ []string) {
			rows := make([][]string, 0, len(r.AccessKeys.AccessKey))
			for _, k := range r.AccessKeys.AccessKey {
				rows = append(rows, []string{k.AccessKeyId, k.Status, k.CreateDate})
			}
			w.table([]string{"ACCESS KEY ID", "STATUS", "CREATED"}, rows)
		}),
	}
	userFlag(list)
	var status string
	update := &cobra.Command{
		Use: "update ACCESS_KEY_ID", Short: "Activate or deactivate an access key", Args: nArgs("ACCESS_KEY_ID"),
		Example: "  keyhold accesskey update LTAI… --status Inactive --user alice",
		RunE: ramRun(a, false, "UpdateAccessKey", func(args []string) (map[string]string, error) {
			if status != "Active" && status != "Inactive" {
				return nil, usagef("--status must be Active or Inactive")
			}
			return map[string]string{"UserName": user, "UserAccessKeyId": args[0], "Status": status}, nil
		}, func(w *textOut, _ *client.Response, args []string) {
			w.line("Access key " + args[0] + " is now " + status)
		}),
	}
	userFlag(update)
	update.Flags().StringVar(&status, "status", "", "Active or Inactive")
	del := &cobra.Command{
		Use: "delete ACCESS_KEY_ID", Short: "Delete an access key", Args: nArgs("ACCESS_KEY_ID"),
		Example: "  keyhold accesskey delete LTAI… --user alice",
		RunE: ramRun(a, false, "DeleteAccessKey", func(args []string) (map[string]string, error) {
			return map[string]string{"UserName": user, "UserAccessKeyId": args[0]}, nil
		}, done("Deleted access key %s")),
	}
	userFlag(del)
	cmd.AddCommand(create, list, update, del)
	return cmd
}

func policyTypeFlag(c *cobra.Command, dst *string, def string) {
	c.Flags().StringVar(dst, "type", def, "policy type: Custom or System")
}

func newPolicyCmd(a *app) *cobra.Command {
	cmd := groupCmd("policy", "Manage policies and their attachments",
		`  keyhold policy create AppRead --document-file app-read.json
  keyhold policy attach AppRead --user alice
  keyhold policy get KeyholdSecretAdministrator --type System`)

	var docFile, description string
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a custom policy from a JSON document", Args: nArgs("NAME"),
		Example: "  keyhold policy create AppRead --document-file app-read.json --description 'read app secrets'",
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := readDocument(a, docFile)
			if err != nil {
				return err
			}
			return ramRun(a, false, "CreatePolicy", func([]string) (map[string]string, error) {
				return map[string]string{"PolicyName": args[0], "PolicyDocument": doc, "Description": description}, nil
			}, func(w *textOut, r *client.PolicyResponse, _ []string) { policyView(w, r.Policy) })(cmd, args)
		},
	}
	create.Flags().StringVar(&docFile, "document-file", "", `policy JSON file, "-" for stdin`)
	create.Flags().StringVar(&description, "description", "", "description")

	var getType string
	get := &cobra.Command{
		Use: "get NAME", Short: "Show a policy and its default document", Args: nArgs("NAME"),
		Example: "  keyhold policy get AppRead\n  keyhold policy get KeyholdSecretUser --type System",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := getPolicy(cmd.Context(), c, getType, args[0])
			if err != nil {
				return err
			}
			return a.emit(out, func(w *textOut) {
				policyView(w, out.Policy)
				w.line(out.DefaultPolicyVersion.PolicyDocument)
			})
		},
	}
	get.Flags().StringVar(&getType, "type", "", "policy type: Custom or System (default: Custom, then System)")

	var listType, marker string
	var maxItems int
	list := &cobra.Command{
		Use: "list", Short: "List system and custom policies", Args: noArgs, Example: "  keyhold policy list --type Custom",
		RunE: ramRun(a, false, "ListPolicies", func([]string) (map[string]string, error) {
			p := pageParams(marker, maxItems)
			p["PolicyType"] = listType
			return p, nil
		}, func(w *textOut, r *client.ListPoliciesResponse, _ []string) {
			policyTable(w, r.Policies.Policy, false)
			if r.IsTruncated {
				w.line("More: --marker " + r.Marker)
			}
		}),
	}
	policyTypeFlag(list, &listType, "")
	list.Flags().StringVar(&marker, "marker", "", "continue after this page marker")
	list.Flags().IntVar(&maxItems, "max-items", 0, "page size, 1-1000 (default 100)")

	cmd.AddCommand(create, get, list,
		newPolicyAttachCmd(a, true), newPolicyAttachCmd(a, false),
		&cobra.Command{
			Use: "delete NAME", Short: "Delete a custom policy attached nowhere", Args: nArgs("NAME"),
			Example: "  keyhold policy delete AppRead",
			RunE: ramRun(a, false, "DeletePolicy", func(args []string) (map[string]string, error) {
				return map[string]string{"PolicyName": args[0]}, nil
			}, done("Deleted policy %s")),
		},
		newPolicyVersionCmd(a),
		newPolicyListForCmd(a),
	)
	return cmd
}

// getPolicy looks a policy up as Custom then System unless a type is given.
func getPolicy(ctx context.Context, c *client.Client, ptype, name string) (*client.PolicyResponse, error) {
	out := &client.PolicyResponse{}
	if ptype != "" {
		return out, c.RAM(ctx, "GetPolicy", map[string]string{"PolicyType": ptype, "PolicyName": name}, out)
	}
	err := c.RAM(ctx, "GetPolicy", map[string]string{"PolicyType": "Custom", "PolicyName": name}, out)
	if client.IsCode(err, "EntityNotExist.Policy") {
		err = c.RAM(ctx, "GetPolicy", map[string]string{"PolicyType": "System", "PolicyName": name}, out)
	}
	return out, err
}

func readDocument(a *app, file string) (string, error) {
	if file == "" {
		return "", usagef("--document-file is required")
	}
	b, err := a.readInput("--document-file", file, 1<<16)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func policyView(w *textOut, p client.RAMPolicy) {
	w.kv("PolicyName", p.PolicyName)
	w.kv("PolicyType", p.PolicyType)
	w.kv("Description", p.Description)
	w.kv("DefaultVersion", p.DefaultVersion)
	w.kv("CreateDate", p.CreateDate)
	w.kv("UpdateDate", p.UpdateDate)
}

func policyTable(w *textOut, ps []client.RAMPolicy, attached bool) {
	rows := make([][]string, 0, len(ps))
	for _, p := range ps {
		last := strconv.Itoa(p.AttachmentCount)
		if attached {
			last = p.AttachDate
		}
		rows = append(rows, []string{p.PolicyName, p.PolicyType, p.DefaultVersion, last, p.Description})
	}
	h := "ATTACHMENTS"
	if attached {
		h = "ATTACHED"
	}
	w.table([]string{"POLICY", "TYPE", "VERSION", h, "DESCRIPTION"}, rows)
}

func newPolicyAttachCmd(a *app, attach bool) *cobra.Command {
	verb, short := "detach", "Detach a policy from a user or a group"
	if attach {
		verb, short = "attach", "Attach a policy to a user or a group"
	}
	var ptype, user, group string
	c := &cobra.Command{
		Use: verb + " NAME (--user USER | --group GROUP)", Short: short, Args: nArgs("NAME"),
		Example: "  keyhold policy " + verb + " AppRead --user alice\n  keyhold policy " + verb + " KeyholdReadOnly --type System --group ops",
		RunE: func(cmd *cobra.Command, args []string) error {
			if (user == "") == (group == "") {
				return usagef("give exactly one of --user and --group")
			}
			action, who, whoParam := "PolicyToUser", user, "UserName"
			if group != "" {
				action, who, whoParam = "PolicyToGroup", group, "GroupName"
			}
			if attach {
				action = "Attach" + action
			} else {
				action = "Detach" + strings.Replace(action, "To", "From", 1)
			}
			return ramRun(a, false, action, func([]string) (map[string]string, error) {
				return map[string]string{"PolicyType": ptype, "PolicyName": args[0], whoParam: who}, nil
			}, func(w *textOut, _ *client.Response, _ []string) {
				if attach {
					w.line("Attached policy " + args[0] + " to " + who)
				} else {
					w.line("Detached policy " + args[0] + " from " + who)
				}
			})(cmd, args)
		},
	}
	policyTypeFlag(c, &ptype, "Custom")
	c.Flags().StringVar(&user, "user", "", "user name")
	c.Flags().StringVar(&group, "group", "", "group name")
	return c
}

func newPolicyListForCmd(a *app) *cobra.Command {
	var user, group string
	c := &cobra.Command{
		Use: "list-attached (--user USER | --group GROUP)", Short: "List the policies attached to a user or a group", Args: noArgs,
		Example: "  keyhold policy list-attached --user alice",
		RunE: func(cmd *cobra.Command, args []string) error {
			if (user == "") == (group == "") {
				return usagef("give exactly one of --user and --group")
			}
			action, p := "ListPoliciesForUser", map[string]string{"UserName": user}
			if group != "" {
				action, p = "ListPoliciesForGroup", map[string]string{"GroupName": group}
			}
			return ramRun(a, false, action, func([]string) (map[string]string, error) { return p, nil },
				func(w *textOut, r *client.ListPoliciesResponse, _ []string) { policyTable(w, r.Policies.Policy, true) })(cmd, args)
		},
	}
	c.Flags().StringVar(&user, "user", "", "user name")
	c.Flags().StringVar(&group, "group", "", "group name")
	return c
}

func newPolicyVersionCmd(a *app) *cobra.Command {
	cmd := groupCmd("version", "Manage a custom policy's versions",
		"  keyhold policy version create AppRead --document-file v2.json --set-default")
	var docFile, rotate string
	var setDefault bool
	create := &cobra.Command{
		Use: "create NAME", Short: "Add a version to a custom policy (at most five are kept)", Args: nArgs("NAME"),
		Example: "  keyhold policy version create AppRead --document-file v2.json --set-default",
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := readDocument(a, docFile)
			if err != nil {
				return err
			}
			return ramRun(a, false, "CreatePolicyVersion", func([]string) (map[string]string, error) {
				return map[string]string{"PolicyName": args[0], "PolicyDocument": doc,
					"SetAsDefault": strconv.FormatBool(setDefault), "RotateStrategy": rotate}, nil
			}, func(w *textOut, r *client.CreatePolicyVersionResponse, _ []string) {
				w.kv("VersionId", r.PolicyVersion.VersionId)
				w.kv("IsDefaultVersion", strconv.FormatBool(r.PolicyVersion.IsDefaultVersion))
				w.kv("CreateDate", r.PolicyVersion.CreateDate)
			})(cmd, args)
		},
	}
	create.Flags().StringVar(&docFile, "document-file", "", `policy JSON file, "-" for stdin`)
	create.Flags().BoolVar(&setDefault, "set-default", false, "make it the default version")
	create.Flags().StringVar(&rotate, "rotate", "", "None (default: refuse a sixth version) or DeleteOldestNonDefaultVersionWhenLimitExceeded")
	cmd.AddCommand(create)
	return cmd
}

func newAccountCmd(a *app) *cobra.Command {
	cmd := groupCmd("account", "Create and list the deployment's accounts (first account's root only)",
		"  keyhold account create --display-name tenant-b --output json > tenant-b-root.json\n  keyhold account list")
	var display string
	create := &cobra.Command{
		Use:     "create",
		Short:   "Create an account; its root access key secret is printed this once",
		Example: "  keyhold account create --display-name tenant-b --output json > tenant-b-root.json",
		Args:    noArgs,
		RunE: ramRun(a, true, "CreateAccount", func([]string) (map[string]string, error) {
			return map[string]string{"DisplayName": display}, nil
		}, func(w *textOut, r *client.CreateAccountResponse, _ []string) {
			w.kv("AccountId", r.Account.AccountId)
			w.kv("DisplayName", r.Account.DisplayName)
			w.kv("AccessKeyId", r.AccessKey.AccessKeyId)
			w.kv("AccessKeySecret", r.AccessKey.AccessKeySecret)
			w.line("The root secret is shown only now; store it safely.")
		}),
	}
	create.Flags().StringVar(&display, "display-name", "", "display name")
	list := &cobra.Command{
		Use: "list", Short: "List accounts", Args: noArgs, Example: "  keyhold account list",
		RunE: ramRun(a, true, "ListAccounts", func([]string) (map[string]string, error) { return nil, nil },
			func(w *textOut, r *client.ListAccountsResponse, _ []string) {
				rows := make([][]string, 0, len(r.Accounts.Account))
				for _, ac := range r.Accounts.Account {
					rows = append(rows, []string{ac.AccountId, ac.DisplayName, ac.CreateDate})
				}
				w.table([]string{"ACCOUNT ID", "DISPLAY NAME", "CREATED"}, rows)
			}),
	}
	cmd.AddCommand(create, list)
	return cmd
}
