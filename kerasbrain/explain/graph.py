"""Walk a functional Keras model layer by layer (public API: ``model.operations``,
``layer.input``, ``layer.output``), flattening nested functional models such as a
backbone inside a multi-task model.

`Graph` runs the model from its input, or from any layer's output onwards (the
feature map of Grad-CAM), and lists the chain of layers between the input and one output
(the path that LRP walks back).
"""

import keras

from kerasbrain.explain.targets import output_tensors


class Step:
    """One layer call of the flattened graph: ``layer``, its input and output tensor ids."""

    def __init__(self, layer, inputs, outputs, is_list):
        self.layer = layer
        self.inputs = inputs  # ids of input KerasTensors
        self.outputs = outputs  # ids of output KerasTensors
        self.is_list = is_list  # the layer takes a list of tensors

    @property
    def name(self):
        return self.layer.name


class Graph:
    """The layers of a functional ``model`` in execution order.

    Args:
        model: a functional ``keras.Model`` (nested functional models are flattened).
            Each layer must be called once.
    """

    def __init__(self, model):
        if not hasattr(model, "operations") or not isinstance(model.inputs, list | tuple):
            raise ValueError(f"{model.name}: explanations need a functional keras.Model")
        if len(model.inputs) != 1:
            raise ValueError(f"{model.name}: explanations need a model with one input, it has {len(model.inputs)}")
        self.model = model
        self.input_id = id(model.inputs[0])
        self.steps = []
        self.tensors = {id(model.inputs[0]): model.inputs[0]}
        self._flatten(model, {})
        self.outputs = {name: self._resolve_id(id(t), {}) for name, t in output_tensors(model).items()}

    def _resolve_id(self, key, alias):
        while key in alias:
            key = alias[key]
        return key

    def _flatten(self, model, alias):
        from kerasbrain.models import UncertaintyWeighting

        ops = [op for op in model.operations if not isinstance(op, keras.layers.InputLayer)]
        nested = [op for op in ops if isinstance(op, keras.Model) and hasattr(op, "operations")]
        outer = self._nested_boundary(model, ops, nested, alias) if nested else {}
        for op in ops:
            if op in outer:  # nested functional model: walk its layers in place
                outer_in, outer_out = outer[op]
                inner = {id(op.inputs[0]): outer_in}
                self._flatten(op, inner)
                for outer_id, inner_t in zip(outer_out, keras.tree.flatten(op.outputs), strict=True):
                    alias[outer_id] = self._resolve_id(id(inner_t), inner)
                continue
            inputs, outputs = op.input, op.output
            flat_out = keras.tree.flatten(outputs)
            in_ids = [self._resolve_id(id(t), alias) for t in keras.tree.flatten(inputs)]
            if isinstance(op, UncertaintyWeighting | keras.layers.Identity):
                for t, inner_id in zip(flat_out, in_ids, strict=True):  # identity on outputs
                    alias[id(t)] = inner_id
                continue
            for t in flat_out:
                self.tensors[id(t)] = t
            self.steps.append(Step(op, in_ids, [id(t) for t in flat_out], isinstance(inputs, list | tuple)))

    @staticmethod
    def _nested_boundary(model, ops, nested, alias):
        """Outer input and output ids of the one nested model of ``model``.

        ``layer.input`` of a nested model gives its own inner graph, so its place in the
        outer graph is found by elimination: its output is the tensor that outer layers
        use and none produces, its input the one produced (or the model input) that no
        outer layer uses.
        """
        if len(nested) != 1 or len(nested[0].inputs) != 1:
            raise ValueError(f"model {model.name!r}: explanations walk at most one nested model "
                             f"with one input; found {[op.name for op in nested]}")
        produced = [id(t) for t in model.inputs]
        consumed = [id(t) for t in keras.tree.flatten(model.outputs)]
        for op in ops:
            if op is not nested[0]:
                produced += [id(t) for t in keras.tree.flatten(op.output)]
                consumed += [id(t) for t in keras.tree.flatten(op.input)]
        outputs = [i for i in dict.fromkeys(consumed) if i not in produced]
        inputs = [i for i in dict.fromkeys(produced) if i not in consumed]
        if len(inputs) != 1 or len(outputs) != len(keras.tree.flatten(nested[0].outputs)):
            raise ValueError(f"model {model.name!r}: cannot place nested model {nested[0].name!r}")
        return {nested[0]: (inputs[0] if inputs[0] not in alias else alias[inputs[0]], outputs)}

    # -- lookup --------------------------------------------------------------------------

    @property
    def layer_names(self):
        return [step.name for step in self.steps]

    def step(self, name):
        """The `Step` of the layer called ``name``; unknown names list the layers."""
        for step in self.steps:
            if step.name == name:
                return step
        raise ValueError(f"layer {name!r} not in model {self.model.name!r}; its layers are "
                         f"{self.layer_names}")

    def shape(self, tensor_id):
        return tuple(self.tensors[tensor_id].shape)

    def chain(self, output):
        """Steps from the input to ``output`` (an output name) when each has one input."""
        target = self.outputs[output]
        producer = {out: step for step in self.steps for out in step.outputs}
        path = []
        while target != self.input_id:
            step = producer[target]
            if len(step.inputs) != 1 or len(step.outputs) != 1:
                raise ValueError(f"layer {step.name!r} ({type(step.layer).__name__}) has "
                                 f"{len(step.inputs)} inputs and {len(step.outputs)} outputs; LRP "
                                 "walks chain-like (SFCN-like) graphs only")
            path.append(step)
            target = step.inputs[0]
        return path[::-1]

    # -- running -------------------------------------------------------------------------

    def run(self, x, start=None, cache=None, keep=()):
        """Run the graph.

        Args:
            x: the model input, or (with ``start``) the output of layer ``start``.
            start: name of the layer whose output ``x`` is; only the layers after it run,
                other inputs they need come from ``cache``.
            cache: ``{tensor id: value}`` of a previous full run (``keep=all``).
            keep: ids of tensors whose values to return as well.

        Returns:
            ``(outputs {name: value}, kept {id: value})``.
        """
        values = dict(cache or {})
        begin = 0
        if start is None:
            values[self.input_id] = x
        else:
            index = self.layer_names.index(start)
            values[self.steps[index].outputs[0]] = x
            begin = index + 1
        downstream = None if start is None else {self.steps[begin - 1].outputs[0]}
        for step in self.steps[begin:]:
            if downstream is not None:
                if not any(i in downstream for i in step.inputs):
                    continue  # does not depend on the start layer: cached value
                downstream.update(step.outputs)
            args = [values[i] for i in step.inputs]
            result = step.layer(args if step.is_list else args[0], training=False) \
                if isinstance(step.layer, keras.layers.Layer) else step.layer(*args)
            for key, value in zip(step.outputs, keras.tree.flatten(result), strict=True):
                values[key] = value
        outputs = {name: values[key] for name, key in self.outputs.items()}
        return outputs, (values if keep == "all" else {k: values[k] for k in keep})
