package iam

import "fmt"

// Error is an identity-management error that RAM reports with a code of
// its own (EntityNotExist.User, DeleteConflict.User.AccessKey, …), so that
// RAM tooling can tell the cases apart exactly. The wire layer's one error
// table maps Code to an HTTP status; Message is safe to show (it names
// entities, never a secret or a password).
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// RAMCode is what the wire layer looks for (it knows no iam types).
func (e *Error) RAMCode() string { return e.Code }

// SafeMessage is the caller-safe message.
func (e *Error) SafeMessage() string { return e.Message }

func ramErr(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// RAM error codes used by this package. Codes and their HTTP statuses follow
// Alibaba Cloud's RAM API error list; kmsapi/errors.go holds the statuses
// and its test checks that every code here has one.
const (
	CodeUserNotExist          = "EntityNotExist.User"
	CodeUserExists            = "EntityAlreadyExists.User"
	CodeGroupNotExist         = "EntityNotExist.Group"
	CodeGroupExists           = "EntityAlreadyExists.Group"
	CodePolicyNotExist        = "EntityNotExist.Policy"
	CodePolicyExists          = "EntityAlreadyExists.Policy"
	CodePolicyVersionNotExist = "EntityNotExist.PolicyVersion"
	CodeAccessKeyNotExist     = "EntityNotExist.User.AccessKey"
	CodeLoginProfileNotExist  = "EntityNotExist.User.LoginProfile"
	CodeLoginProfileExists    = "EntityAlreadyExists.User.LoginProfile"
	CodeUserGroupExists       = "EntityAlreadyExists.User.Group"
	CodeUserGroupNotExist     = "EntityNotExist.User.Group"
	CodeUserPolicyExists      = "EntityAlreadyExists.User.Policy"
	CodeUserPolicyNotExist    = "EntityNotExist.User.Policy"
	CodeGroupPolicyExists     = "EntityAlreadyExists.Group.Policy"
	CodeGroupPolicyNotExist   = "EntityNotExist.Group.Policy"
	CodeDeleteUserAccessKey   = "DeleteConflict.User.AccessKey"
	CodeDeleteUserGroup       = "DeleteConflict.User.Group"
	CodeDeleteUserLogin       = "DeleteConflict.User.LoginProfile"
	CodeDeleteUserPolicy      = "DeleteConflict.User.Policy"
	CodeDeleteGroupUser       = "DeleteConflict.Group.User"
	CodeDeleteGroupPolicy     = "DeleteConflict.Group.Policy"
	CodeDeletePolicyUser      = "DeleteConflict.Policy.User"
	CodeDeletePolicyGroup     = "DeleteConflict.Policy.Group"
	CodeAccessKeyLimit        = "LimitExceeded.User.AccessKey"
	CodePolicyVersionLimit    = "LimitExceeded.Policy.Version"
	CodeMalformedPolicy       = "MalformedPolicyDocument"
	CodeInvalidUserName       = "InvalidParameter.UserName.InvalidChars"
	CodeUserNameLength        = "InvalidParameter.UserName.Length"
	CodeInvalidNewUserName    = "InvalidParameter.NewUserName.InvalidChars"
	CodeNewUserNameLength     = "InvalidParameter.NewUserName.Length"
	CodeInvalidGroupName      = "InvalidParameter.GroupName.InvalidChars"
	CodeGroupNameLength       = "InvalidParameter.GroupName.Length"
	CodeInvalidPolicyName     = "InvalidParameter.PolicyName.InvalidChars"
	CodePolicyNameLength      = "InvalidParameter.PolicyName.Length"
	CodeInvalidPolicyType     = "InvalidParameter.PolicyType.InvalidValue"
	CodeInvalidStatus         = "InvalidParameter.Status.InvalidValue"
	CodeInvalidPassword       = "InvalidParameter.Password.Length"
	CodeInvalidLength         = "InvalidParameter.Length"
	CodeDeleteDefaultVersion  = "DeleteConflict.PolicyVersion.Default"
)

// Codes lists every code this package returns, for the wire table's test.
var Codes = []string{
	CodeUserNotExist, CodeUserExists, CodeGroupNotExist, CodeGroupExists, CodePolicyNotExist,
	CodePolicyExists, CodePolicyVersionNotExist, CodeAccessKeyNotExist, CodeLoginProfileNotExist,
	CodeLoginProfileExists, CodeUserGroupExists, CodeUserGroupNotExist, CodeUserPolicyExists,
	CodeUserPolicyNotExist, CodeGroupPolicyExists, CodeGroupPolicyNotExist, CodeDeleteUserAccessKey,
	CodeDeleteUserGroup, CodeDeleteUserLogin, CodeDeleteUserPolicy, CodeDeleteGroupUser,
	CodeDeleteGroupPolicy, CodeDeletePolicyUser, CodeDeletePolicyGroup, CodeAccessKeyLimit,
	CodePolicyVersionLimit, CodeMalformedPolicy, CodeInvalidUserName, CodeUserNameLength,
	CodeInvalidNewUserName, CodeNewUserNameLength, CodeInvalidGroupName, CodeGroupNameLength,
	CodeInvalidPolicyName, CodePolicyNameLength, CodeInvalidPolicyType, CodeInvalidStatus,
	CodeInvalidPassword, CodeInvalidLength, CodeDeleteDefaultVersion,
}
