package admin

import (
	"context"
	"errors"
	"net/http"

	"github.com/pipelined/pipelined/internal/consoleusers"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// ConsoleUsersPath is the collection of console users.
const ConsoleUsersPath = "console-users"

// ConsoleUserPath is the path of one console user, below PathPrefix.
func ConsoleUserPath(name string) string { return ConsoleUsersPath + "/" + name }

// CreateConsoleUserInput creates a console user. With no password the
// server generates one and answers it, once.
type CreateConsoleUserInput struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	Password string `json:"password,omitempty"`
}

// UpdateConsoleUserInput changes a console user: absent members stay as
// they are. ResetPassword generates a new password (answered once);
// Password sets a chosen one. A new password or disabling signs the user
// out everywhere.
type UpdateConsoleUserInput struct {
	Role          *string `json:"role,omitempty"`
	Disabled      *bool   `json:"disabled,omitempty"`
	Password      *string `json:"password,omitempty"`
	ResetPassword bool    `json:"resetPassword,omitempty"`
}

// ConsoleUser describes a console user: never the password or its hash.
type ConsoleUser struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	Disabled bool   `json:"disabled"`
	Created  string `json:"created"`
	Updated  string `json:"updated"`
}

// ConsoleUserOutput wraps one console user; GeneratedPassword is set only
// in the answer that generated it.
type ConsoleUserOutput struct {
	ConsoleUser       ConsoleUser `json:"consoleUser"`
	GeneratedPassword string      `json:"generatedPassword,omitempty"`
}

// ListConsoleUsersOutput lists console users.
type ListConsoleUsersOutput struct {
	ConsoleUsers []ConsoleUser `json:"consoleUsers"`
}

func consoleUserView(u store.ConsoleUser) ConsoleUser {
	return ConsoleUser{Name: u.Name, Role: u.Role, Disabled: u.Disabled, Created: Time(u.Created), Updated: Time(u.Updated)}
}

func (h *Handler) consoleUsersConfigured() error {
	if h.consoleUsers == nil {
		return errors.New("admin: no console user service configured (admin.Config.ConsoleUsers)")
	}
	return nil
}

func (h *Handler) createConsoleUser(ctx context.Context, _ *http.Request, _ []string, body []byte) (int, any, error) {
	if err := h.consoleUsersConfigured(); err != nil {
		return 0, nil, err
	}
	var in CreateConsoleUserInput
	if err := decodeBody(body, &in); err != nil {
		return 0, nil, err
	}
	out := ConsoleUserOutput{}
	if in.Password == "" {
		pw, err := consoleusers.GeneratePassword()
		if err != nil {
			return 0, nil, err
		}
		in.Password, out.GeneratedPassword = pw, pw
	}
	u, err := h.consoleUsers.Create(ctx, in.Name, consoleusers.Role(in.Role), in.Password)
	if err != nil {
		return 0, nil, err
	}
	out.ConsoleUser = consoleUserView(u)
	return http.StatusCreated, out, nil
}

func (h *Handler) listConsoleUsers(ctx context.Context, _ *http.Request, _ []string, _ []byte) (int, any, error) {
	if err := h.consoleUsersConfigured(); err != nil {
		return 0, nil, err
	}
	us, err := h.consoleUsers.List(ctx)
	if err != nil {
		return 0, nil, err
	}
	out := ListConsoleUsersOutput{ConsoleUsers: make([]ConsoleUser, 0, len(us))}
	for _, u := range us {
		out.ConsoleUsers = append(out.ConsoleUsers, consoleUserView(u))
	}
	return http.StatusOK, out, nil
}

func (h *Handler) getConsoleUser(ctx context.Context, _ *http.Request, args []string, _ []byte) (int, any, error) {
	if err := h.consoleUsersConfigured(); err != nil {
		return 0, nil, err
	}
	u, err := h.consoleUsers.Get(ctx, args[0])
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, ConsoleUserOutput{ConsoleUser: consoleUserView(u)}, nil
}

func (h *Handler) updateConsoleUser(ctx context.Context, _ *http.Request, args []string, body []byte) (int, any, error) {
	if err := h.consoleUsersConfigured(); err != nil {
		return 0, nil, err
	}
	var in UpdateConsoleUserInput
	if err := decodeBody(body, &in); err != nil {
		return 0, nil, err
	}
	var c consoleusers.Change
	if in.Role != nil {
		r := consoleusers.Role(*in.Role)
		c.Role = &r
	}
	c.Disabled, c.Password = in.Disabled, in.Password
	out := ConsoleUserOutput{}
	if in.ResetPassword {
		if in.Password != nil {
			return 0, nil, wire.Errorf(wire.ErrValidation, "password and resetPassword exclude each other: give a password, or ask for one to be generated")
		}
		pw, err := consoleusers.GeneratePassword()
		if err != nil {
			return 0, nil, err
		}
		c.Password, out.GeneratedPassword = &pw, pw
	}
	u, err := h.consoleUsers.Update(ctx, args[0], c)
	if err != nil {
		return 0, nil, err
	}
	out.ConsoleUser = consoleUserView(u)
	return http.StatusOK, out, nil
}
