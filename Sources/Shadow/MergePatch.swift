/// JSON merge patch, RFC 7386: how the cloud changes `desired` and a device changes `reported`.
///
/// A patch that is an object changes its target member by member: `null` removes the key, an
/// object merges into the target's value recursively, any other value replaces it (arrays are
/// replaced whole, never merged). A patch that is not an object replaces the whole target. The
/// result keeps the target's member order; new keys go at the end in the patch's order.
///
/// ```swift
/// let patched = MergePatch.apply(patch: .object(["led": "on", "old": .null]), to: .object(["old": true]))
/// // {"led":"on"}
/// ```
public enum MergePatch {
    /// The RFC's `MergePatch(Target, Patch)`.
    public static func apply(patch: JSONValue, to target: JSONValue) -> JSONValue {
        guard case .object(let patchObject) = patch else { return patch }
        return .object(apply(patch: patchObject, to: target.object ?? JSONObject()))
    }

    /// The object case: `target` with every member of `patch` applied.
    public static func apply(patch: JSONObject, to target: JSONObject) -> JSONObject {
        var result = target
        for member in patch.members {
            if member.value.isNull {
                result[member.key] = nil
            } else {
                result[member.key] = apply(patch: member.value, to: result[member.key] ?? .null)
            }
        }
        return result
    }
}
