import Glibc
import SmartPollProtocol

/// Who may use the control socket (SPEC section 7): the supervisor's own user, root, and, when
/// `socket_group` is set, members of that group (by primary group or the group's member list).
struct PeerPolicy {
    let ownUserID: UInt32
    let groupID: UInt32?
    let groupMembers: Set<String>

    /// - Throws: when `socketGroup` names no group.
    init(socketGroup: String?) throws(SupervisorError) {
        ownUserID = getuid()
        guard let socketGroup else {
            groupID = nil
            groupMembers = []
            return
        }
        guard let group = getgrnam(socketGroup) else {
            throw SupervisorError(
                code: .invalidConfiguration,
                message: "socket_group: no group is named \(JSONValue.string(socketGroup).serialized())")
        }
        groupID = group.pointee.gr_gid
        var members: Set<String> = []
        if var member = group.pointee.gr_mem {
            while let name = member.pointee {
                members.insert(String(cString: name))
                member += 1
            }
        }
        groupMembers = members
    }

    func allows(userID: UInt32, groupID peerGroup: UInt32) -> Bool {
        if userID == ownUserID || userID == 0 { return true }
        guard let groupID else { return false }
        if peerGroup == groupID { return true }
        guard let user = getpwuid(userID) else { return false }
        return groupMembers.contains(String(cString: user.pointee.pw_name))
    }
}
