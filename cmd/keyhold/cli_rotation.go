package main

import (
	"github.com/spf13/cobra"

	"github.com/keyhold/keyhold/client"
)

// keyhold rotation …: rotations of managed secrets and their steps, through
// the public client only.

func newRotationCmd(a *app) *cobra.Command {
	cmd := groupCmd("rotation", "Rotations of managed secrets: list, show steps",
		"  keyhold rotation list --secret-name acs/ecs/web-1/alice\n  keyhold rotation show rot-0193b7c2a1f4e3d2c1b0a9")
	cmd.AddCommand(newRotationListCmd(a), newRotationShowCmd(a))
	return cmd
}

func newRotationListCmd(a *app) *cobra.Command {
	var r client.ListRotationsRequest
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List rotations, newest first",
		Example: `  keyhold rotation list
  keyhold rotation list --state rolling-back --output json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.ListRotations(cmd.Context(), &r)
			if err != nil {
				return err
			}
			return a.emit(out, func(w *textOut) {
				rows := [][]string{}
				for _, x := range out.Rotations.Rotation {
					rows = append(rows, []string{x.RotationId, x.SecretName, x.InstanceId, x.State, x.Trigger, x.UpdateTime})
				}
				w.table([]string{"ROTATION ID", "SECRET", "INSTANCE ID", "STATE", "TRIGGER", "UPDATED"}, rows)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.SecretName, "secret-name", "", "only this secret's rotations")
	f.StringVar(&r.State, "state", "", "only rotations in this state (e.g. succeeded, failed, rolling-back)")
	f.IntVar(&r.PageNumber, "page", 0, "page number (from 1)")
	f.IntVar(&r.PageSize, "page-size", 0, "rotations per page (default 10)")
	return cmd
}

func newRotationShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show ROTATION_ID",
		Short: "Show a rotation: its state, each step with its time and error, and which check verified it",
		Long: `Show a rotation. Check says how the agent verified the new credential:
ssh-login (it logged in to the host's sshd with it) or local (sshd does not
offer that login to the user, so it checked the shadow entry or
authorized_keys). Errors never contain a value.`,
		Example: "  keyhold rotation show rot-0193b7c2a1f4e3d2c1b0a9",
		Args:    nArgs("ROTATION_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			x, err := c.DescribeRotation(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.emit(x, func(w *textOut) {
				w.kv("RotationId", x.RotationId)
				w.kv("SecretName", x.SecretName)
				w.kv("SecretSubType", x.SecretSubType)
				w.kv("InstanceId", x.InstanceId)
				w.kv("UserName", x.UserName)
				w.kv("VersionId", x.VersionId)
				w.kv("State", x.State)
				w.kv("Trigger", x.Trigger)
				w.kv("Check", x.Check)
				w.kv("Error", x.Error)
				w.kv("CreateTime", x.CreateTime)
				w.kv("UpdateTime", x.UpdateTime)
				rows := [][]string{}
				for _, s := range x.Steps.Step {
					rows = append(rows, []string{s.Name, s.State, s.Time, s.Error})
				}
				w.line("")
				w.table([]string{"STEP", "STATE", "TIME", "ERROR"}, rows)
			})
		},
	}
}
