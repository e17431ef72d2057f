package api

import (
	"context"
	"net/http"
)

// Users is GET /api/v1/users.
func (c *Client) Users(ctx context.Context) ([]User, error) {
	return list[User](ctx, c, pathUsers, nil)
}

// AddUser is POST /api/v1/users.
func (c *Client) AddUser(ctx context.Context, req AddUserRequest) (UserPassword, error) {
	var out UserPassword
	_, err := c.call(ctx, http.MethodPost, pathUsers, nil, req, &out)
	return out, err
}

// DisableUser is POST /api/v1/users/{user}/disable.
func (c *Client) DisableUser(ctx context.Context, name string) (User, error) {
	var out User
	_, err := c.call(ctx, http.MethodPost, pathUserDisable, []string{name}, nil, &out)
	return out, err
}

// SetPassword is POST /api/v1/users/{user}/password.
func (c *Client) SetPassword(ctx context.Context, name string, req PasswordRequest) (UserPassword, error) {
	var out UserPassword
	_, err := c.call(ctx, http.MethodPost, pathUserPassword, []string{name}, req, &out)
	return out, err
}

// SetRole is POST /api/v1/users/{user}/role.
func (c *Client) SetRole(ctx context.Context, name, role string) (User, error) {
	var out User
	_, err := c.call(ctx, http.MethodPost, pathUserRole, []string{name}, RoleRequest{Role: role}, &out)
	return out, err
}

// Tokens is GET /api/v1/tokens.
func (c *Client) Tokens(ctx context.Context) ([]Token, error) {
	return list[Token](ctx, c, pathTokens, nil)
}

// AddToken is POST /api/v1/tokens.
func (c *Client) AddToken(ctx context.Context, req AddTokenRequest) (TokenIssued, error) {
	var out TokenIssued
	_, err := c.call(ctx, http.MethodPost, pathTokens, nil, req, &out)
	return out, err
}

// RevokeToken is DELETE /api/v1/tokens/{token_id}.
func (c *Client) RevokeToken(ctx context.Context, tokenID string) (Token, error) {
	var out Token
	_, err := c.call(ctx, http.MethodDelete, pathToken, []string{tokenID}, nil, &out)
	return out, err
}

// Login is POST /api/v1/login. It needs no token: a Client made with an
// empty token may call it, then NewClient with the session's secret.
func (c *Client) Login(ctx context.Context, req LoginRequest) (Session, error) {
	var out Session
	_, err := c.call(ctx, http.MethodPost, pathLogin, nil, req, &out)
	return out, err
}

// Logout is POST /api/v1/logout.
func (c *Client) Logout(ctx context.Context) (LoggedOut, error) {
	var out LoggedOut
	_, err := c.call(ctx, http.MethodPost, pathLogout, nil, nil, &out)
	return out, err
}
