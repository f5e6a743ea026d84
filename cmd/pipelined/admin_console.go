package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/pipelined/pipelined/internal/admin"
)

// The console-user commands of `pipelined admin`. Passwords are never
// flags (they would sit in the shell history and the process list): a new
// user or a reset gets a generated password, printed once, unless
// --password-stdin reads a chosen one from standard input.
func init() {
	adminCommands = append(adminCommands,
		adminCommand{
			name: "create-console-user", args: "--name NAME --role viewer|approver|operator|admin [--password-stdin]",
			help: "create a web console user. Prints it as JSON with a generated password, shown this once\n" +
				"        (with --password-stdin, the first line of standard input is the password instead)",
			success: http.StatusCreated,
			flags: func(fs *flag.FlagSet) func() (adminRequest, error) {
				name := fs.String("name", "", "the user's name (sign-in name)")
				role := fs.String("role", "", "viewer, approver, operator or admin")
				fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
				return func() (adminRequest, error) {
					if err := required(map[string]string{"--name": *name, "--role": *role}); err != nil {
						return adminRequest{}, err
					}
					in := admin.CreateConsoleUserInput{Name: *name, Role: *role}
					if *fromStdin {
						pw, err := readPasswordLine(os.Stdin)
						if err != nil {
							return adminRequest{}, err
						}
						in.Password = pw
					}
					body, err := json.Marshal(in)
					return adminRequest{method: http.MethodPost, path: admin.ConsoleUsersPath, body: body}, err
				}
			},
		},
		adminCommand{
			name: "list-console-users", help: "list the web console's users (never passwords)", success: http.StatusOK,
			flags: func(fs *flag.FlagSet) func() (adminRequest, error) {
				return func() (adminRequest, error) {
					return adminRequest{method: http.MethodGet, path: admin.ConsoleUsersPath}, nil
				}
			},
		},
		adminCommand{
			name: "describe-console-user", args: "--name NAME", help: "show one console user", success: http.StatusOK,
			flags: consoleUserRequest(func(string) (*admin.UpdateConsoleUserInput, error) { return nil, nil }),
		},
		adminCommand{
			name: "set-console-user-role", args: "--name NAME --role viewer|approver|operator|admin",
			help: "change a console user's role (takes effect on the user's next request)", success: http.StatusOK,
			flags: func(fs *flag.FlagSet) func() (adminRequest, error) {
				role := fs.String("role", "", "viewer, approver, operator or admin")
				return consoleUserRequest(func(string) (*admin.UpdateConsoleUserInput, error) {
					if *role == "" {
						return nil, errors.New("--role is required")
					}
					return &admin.UpdateConsoleUserInput{Role: role}, nil
				})(fs)
			},
		},
		adminCommand{
			name: "disable-console-user", args: "--name NAME",
			help: "disable a console user: signed out everywhere at once, and cannot sign in", success: http.StatusOK,
			flags: consoleUserRequest(func(string) (*admin.UpdateConsoleUserInput, error) {
				yes := true
				return &admin.UpdateConsoleUserInput{Disabled: &yes}, nil
			}),
		},
		adminCommand{
			name: "enable-console-user", args: "--name NAME", help: "enable a disabled console user", success: http.StatusOK,
			flags: consoleUserRequest(func(string) (*admin.UpdateConsoleUserInput, error) {
				no := false
				return &admin.UpdateConsoleUserInput{Disabled: &no}, nil
			}),
		},
		adminCommand{
			name: "reset-console-user-password", args: "--name NAME [--password-stdin]",
			help: "give a console user a new password (generated and printed once, or read from standard input\n" +
				"        with --password-stdin); the user is signed out everywhere", success: http.StatusOK,
			flags: func(fs *flag.FlagSet) func() (adminRequest, error) {
				fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
				return consoleUserRequest(func(string) (*admin.UpdateConsoleUserInput, error) {
					if !*fromStdin {
						return &admin.UpdateConsoleUserInput{ResetPassword: true}, nil
					}
					pw, err := readPasswordLine(os.Stdin)
					if err != nil {
						return nil, err
					}
					return &admin.UpdateConsoleUserInput{Password: &pw}, nil
				})(fs)
			},
		},
	)
}

// consoleUserRequest is the flags and request of a command on one console
// user (--name): a GET when change answers nil, else a PATCH with it.
func consoleUserRequest(change func(name string) (*admin.UpdateConsoleUserInput, error)) func(fs *flag.FlagSet) func() (adminRequest, error) {
	return func(fs *flag.FlagSet) func() (adminRequest, error) {
		name := fs.String("name", "", "the console user's name")
		return func() (adminRequest, error) {
			if err := required(map[string]string{"--name": *name}); err != nil {
				return adminRequest{}, err
			}
			in, err := change(*name)
			if err != nil {
				return adminRequest{}, err
			}
			if in == nil {
				return adminRequest{method: http.MethodGet, path: admin.ConsoleUserPath(*name)}, nil
			}
			body, err := json.Marshal(in)
			return adminRequest{method: http.MethodPatch, path: admin.ConsoleUserPath(*name), body: body}, err
		}
	}
}

// readPasswordLine reads one line (without its line ending) from r.
func readPasswordLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("--password-stdin: standard input had no password")
	}
	return pw, nil
}
